package sm2_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/go-trustlog/trustlog/conformance"
	"github.com/go-trustlog/trustlog/core"
	"github.com/go-trustlog/trustlog/signers/sm2"
)

func TestSignVerifyOperation(t *testing.T) {
	t.Parallel()
	priv, pub, err := sm2.Generate("example.cn/app")
	require.NoError(t, err)
	s, err := sm2.NewSigner("example.cn/app", priv)
	require.NoError(t, err)
	v, err := sm2.NewVerifier("example.cn/app", pub)
	require.NoError(t, err)
	assert.Equal(t, s.KeyName(), v.KeyName())

	op := conformance.NewOp("sm2", 1)
	require.NoError(t, op.Seal(s))
	assert.LessOrEqual(t, len(op.Sign), core.MaxSignLen)
	require.NoError(t, core.VerifyOperation(op, true, v))

	b, err := op.AppendSealed(nil)
	require.NoError(t, err)
	dec, err := core.DecodeSealed(b)
	require.NoError(t, err)
	require.NoError(t, core.VerifyOperation(dec, true, v), "survives the canonical encoding")

	altered := *op
	altered.Actor = "mallory"
	altered.OpHash = altered.ComputeHash()
	assert.ErrorIs(t, core.VerifyOperation(&altered, true, v), core.ErrBadSignature)

	_, otherPub, err := sm2.Generate("example.cn/app")
	require.NoError(t, err)
	other, err := sm2.NewVerifier("example.cn/app", otherPub)
	require.NoError(t, err)
	assert.ErrorIs(t, core.VerifyOperation(op, true, other), core.ErrBadSignature, "another key of the same name")
}

func TestBadKeys(t *testing.T) {
	t.Parallel()
	priv, pub, err := sm2.Generate("k")
	require.NoError(t, err)
	_, err = sm2.NewSigner("k", pub)
	assert.Error(t, err)
	_, err = sm2.NewVerifier("k", priv)
	assert.Error(t, err)
	_, err = sm2.NewSigner("k", []byte("-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"))
	require.Error(t, err)
	assert.NotContains(t, err.Error(), "bm90IGEga2V5")
	_, _, err = sm2.Generate("bad name")
	assert.Error(t, err)
}
