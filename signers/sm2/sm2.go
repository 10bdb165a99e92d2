// Package sm2 signs operations with SM2 (GB/T 32918, with SM3 and the
// standard's default user id), the algorithm of the original SDK, behind
// core's Signer and Verifier interfaces. Ed25519 (core.NewEd25519Signer)
// stays the default; SM2 is for deployments that must use the Chinese
// national standards.
//
// Keys are PEM: PKCS#8 "PRIVATE KEY" and PKIX "PUBLIC KEY"
// (github.com/emmansun/gmsm/smx509), interoperable with gmssl/openssl
// tooling. A key's name, stored with every signature, is "name+hash" as
// for note keys: hash is the first four bytes of the SHA-256 of the PKIX
// public key, in hex.
package sm2

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	gmsm2 "github.com/emmansun/gmsm/sm2"
	"github.com/emmansun/gmsm/smx509"

	"github.com/go-trustlog/trustlog/core"
)

// Generate creates an SM2 key pair named name and returns both halves as
// PEM.
func Generate(name string) (privPEM, pubPEM []byte, err error) {
	if name == "" || strings.ContainsAny(name, "+ \t\n") {
		return nil, nil, errors.New("sm2: a key name is required and may not contain '+' or spaces")
	}
	k, err := gmsm2.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := smx509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, err
	}
	pub, err := smx509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), nil
}

type signer struct {
	name string
	key  *gmsm2.PrivateKey
}

// NewSigner returns a core.Signer for a PEM PKCS#8 SM2 private key. The
// error never contains key material.
func NewSigner(name string, privPEM []byte) (core.Signer, error) {
	b, _ := pem.Decode(privPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, errors.New("sm2: not a PEM \"PRIVATE KEY\" block")
	}
	k, err := smx509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, errors.New("sm2: not a PKCS#8 private key")
	}
	sk, ok := k.(*gmsm2.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("sm2: the key is %T, not SM2", k)
	}
	pub, err := smx509.MarshalPKIXPublicKey(&sk.PublicKey)
	if err != nil {
		return nil, err
	}
	return &signer{name: keyName(name, pub), key: sk}, nil
}

func (s *signer) KeyName() string { return s.name }

func (s *signer) Sign(msg []byte) ([]byte, error) {
	return s.key.SignWithSM2(rand.Reader, nil, msg)
}

type verifier struct {
	name string
	key  *ecdsa.PublicKey
}

// NewVerifier returns a core.Verifier for a PEM PKIX SM2 public key.
func NewVerifier(name string, pubPEM []byte) (core.Verifier, error) {
	b, _ := pem.Decode(pubPEM)
	if b == nil || b.Type != "PUBLIC KEY" {
		return nil, errors.New("sm2: not a PEM \"PUBLIC KEY\" block")
	}
	k, err := smx509.ParsePKIXPublicKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("sm2: %w", err)
	}
	pk, ok := k.(*ecdsa.PublicKey)
	if !ok || pk.Curve != gmsm2.P256() {
		return nil, errors.New("sm2: not an SM2 public key")
	}
	return &verifier{name: keyName(name, b.Bytes), key: pk}, nil
}

func (v *verifier) KeyName() string { return v.name }

func (v *verifier) Verify(msg, sig []byte) bool {
	return gmsm2.VerifyASN1WithSM2(v.key, nil, msg, sig)
}

func keyName(name string, pkix []byte) string {
	sum := sha256.Sum256(pkix)
	return fmt.Sprintf("%s+%x", name, sum[:4])
}
