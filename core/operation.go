package core

import (
	"strconv"
	"time"
)

// Operation is one provable operation on a digital object: who (Actor, from
// ProducerID) did what (Source, Type) to which object (DOID), with the hashes
// of the request and response bodies. The library fills OpID, CreatedAt and
// OpHash, and Signer/Sign when the client has a signer.
//
// The JSON names are the column names of the operation table and the field
// names used in every error, so a ValidationError's Field can be looked up in
// any of the three.
type Operation struct {
	// OpID identifies the operation. Empty: a UUIDv7 is generated. Otherwise
	// it must be a UUID; it is stored in canonical lower-case form.
	OpID string `json:"op_id,omitempty"`
	// Source is the protocol the operation came through: DOIP or IRP.
	Source Source `json:"op_source"`
	// Type is the operation: a DOIP operation id ("Op.Create", or an
	// extended operation's identifier) or, for IRP, the decimal Handle
	// protocol op code ("100" for CREATE_HANDLE).
	Type string `json:"op_type"`
	// DOID is the digital object identifier, "prefix/local"; it must start
	// with DOPrefix + "/".
	DOID string `json:"doid"`
	// DOPrefix is the identifier prefix (e.g. "10.1000"); it has no "/".
	DOPrefix string `json:"do_prefix"`
	// DORepository names the repository holding the object; optional.
	DORepository string `json:"do_repository,omitempty"`
	// Actor is who performed the operation.
	Actor string `json:"op_actor"`
	// ProducerID identifies the service that recorded the operation.
	ProducerID string `json:"producer_id"`
	// HashAlg is the algorithm of RequestBodyHash and ResponseBodyHash.
	// Empty means HashSHA256.
	HashAlg HashAlg `json:"hash_alg,omitempty"`
	// RequestBodyHash is the hex digest of the request body; empty when the
	// request had none.
	RequestBodyHash string `json:"request_body_hash,omitempty"`
	// ResponseBodyHash is the hex digest of the response body; empty when
	// the response had none.
	ResponseBodyHash string `json:"response_body_hash,omitempty"`
	// ClientIP is the client's address; optional.
	ClientIP string `json:"client_ip,omitempty"`
	// ServerIP is the server's address; optional.
	ServerIP string `json:"server_ip,omitempty"`
	// CreatedAt is when the operation happened, kept to the microsecond in
	// UTC. Zero: the time of recording.
	CreatedAt time.Time `json:"created_at,omitzero"`

	// OpHash is the hex SHA-256 of the canonical encoding (see Canonical),
	// computed by the library. A caller that sets it gets an error if it
	// differs from the computed one.
	OpHash string `json:"op_hash,omitempty"`
	// Signer names the key that made Sign (a note-format key name).
	Signer string `json:"signer,omitempty"`
	// Sign is the signature over OpHash (see SignedMessage).
	Sign []byte `json:"sign,omitempty"`
}

// Source is the protocol an operation came through.
type Source string

// The two protocols of the digital object architecture.
const (
	SourceDOIP Source = "DOIP"
	SourceIRP  Source = "IRP"
)

// DOIP operation identifiers (DOIP v2.0 basic operations). Extended
// operations are accepted too: any identifier within the length limit.
const (
	OpHello          = "Op.Hello"
	OpCreate         = "Op.Create"
	OpRetrieve       = "Op.Retrieve"
	OpUpdate         = "Op.Update"
	OpDelete         = "Op.Delete"
	OpSearch         = "Op.Search"
	OpListOperations = "Op.ListOperations"
)

// IRPOpCode is a Handle protocol (RFC 3652) operation code; an IRP
// operation's Type is its decimal form, see IRPType.
type IRPOpCode int32

// Handle protocol op codes.
const (
	IRPResolution       IRPOpCode = 1
	IRPGetSiteInfo      IRPOpCode = 2
	IRPCreateHandle     IRPOpCode = 100
	IRPDeleteHandle     IRPOpCode = 101
	IRPAddValue         IRPOpCode = 102
	IRPRemoveValue      IRPOpCode = 103
	IRPModifyValue      IRPOpCode = 104
	IRPListHandles      IRPOpCode = 105
	IRPListNAs          IRPOpCode = 106
	IRPChallengeResp    IRPOpCode = 200
	IRPVerifyResponse   IRPOpCode = 201
	IRPHomeNA           IRPOpCode = 300
	IRPUnhomeNA         IRPOpCode = 301
	IRPListHomedNAs     IRPOpCode = 302
	IRPSessionSetup     IRPOpCode = 400
	IRPSessionTerminate IRPOpCode = 401
)

// IRPType returns the Operation.Type for an IRP op code.
func IRPType(code IRPOpCode) string { return strconv.Itoa(int(code)) }

// HashAlg names the digest algorithm of an operation's body hashes.
type HashAlg string

// Supported body-hash algorithms.
const (
	HashSHA256 HashAlg = "sha256"
	HashSHA384 HashAlg = "sha384"
	HashSHA512 HashAlg = "sha512"
	HashSM3    HashAlg = "sm3"
)

// HexLen returns the length in hex digits of a digest of this algorithm,
// or 0 if the algorithm is unknown.
func (a HashAlg) HexLen() int {
	switch a {
	case HashSHA256, HashSM3:
		return 64
	case HashSHA384:
		return 96
	case HashSHA512:
		return 128
	}
	return 0
}

// Field length limits, in bytes of UTF-8. They are the column sizes of every
// driver's schema, so a valid operation always fits.
const (
	MaxActorLen      = 256
	MaxDOIDLen       = 512
	MaxDOPrefixLen   = 128
	MaxRepositoryLen = 256
	MaxProducerIDLen = 256
	MaxTypeLen       = 128
	MaxSignerLen     = 256
	MaxSignLen       = 512
	// MaxBatch is the most operations one Record call takes.
	MaxBatch = 10000
)

// Status is the user-facing status of the original SDK, derived from State.
type Status string

// The statuses. NotTrustlogged covers pending and retrying.
const (
	StatusNotTrustlogged Status = "NOT_TRUSTLOGGED"
	StatusTrustlogged    Status = "TRUSTLOGGED"
	StatusDead           Status = "DEAD"
)

// State is where an operation is in publishing. It is derived, never
// stored: published is "its position is at or below its partition's
// cursor and it is not in the retry table", retrying and dead are its row
// in the retry table, pending is everything else (no position yet, or
// above the cursor). The numbers are those of the first schema's state
// column, so reports keep their meaning.
type State int16

// The states.
const (
	StatePending   State = 0
	StateRetrying  State = 2
	StatePublished State = 3
	StateDead      State = 4
)

// States lists every state in order.
var States = []State{StatePending, StateRetrying, StatePublished, StateDead}

// String returns the state's name as used in logs and the CLI.
func (s State) String() string {
	switch s {
	case StatePending:
		return "pending"
	case StateRetrying:
		return "retrying"
	case StatePublished:
		return "published"
	case StateDead:
		return "dead"
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}

// Settled reports whether the relay is done with the operation for now
// (published or dead).
func (s State) Settled() bool { return s == StatePublished || s == StateDead }

// Status maps the state to the original SDK's status.
func (s State) Status() Status {
	switch s {
	case StatePublished:
		return StatusTrustlogged
	case StateDead:
		return StatusDead
	}
	return StatusNotTrustlogged
}

// Record is an operation as stored, with where it stands in publishing.
type Record struct {
	// Seq is the store's record sequence: the order operations were
	// inserted in, gapless neither in time nor in commit order.
	Seq int64
	Op  Operation
	// Part is the operation's partition (PartitionOf its DOID).
	Part int
	// State is where the operation is in publishing (derived; see State).
	State State
	// Attempts counts failed sends of the operation (its retry row).
	Attempts int
	// LastError is the last publishing error, if any.
	LastError string
	// DueAt is when a retrying operation is next due; zero otherwise.
	DueAt time.Time
	// UpdatedAt is when the operation's retry row last changed, or when
	// it was recorded.
	UpdatedAt time.Time
	// Held, in a strict read (ReadParams.Strict), says an earlier
	// operation of the same DOID is in the retry table and not dead: this
	// one must wait behind it.
	Held bool
	// LeafIndex is the operation's position: its index in the Merkle log,
	// gapless in the order the sequencer took committed operations; -1
	// until the sequencer has taken it.
	LeafIndex int64
}
