package core

import (
	"errors"
	"fmt"
	"strconv"
)

// Sentinel errors callers branch on with errors.Is.
var (
	// ErrInvalidOperation is wrapped by every *ValidationError.
	ErrInvalidOperation = errors.New("trustlog: invalid operation")
	// ErrNotFound is returned when an operation or cursor does not exist.
	ErrNotFound = errors.New("trustlog: not found")
	// ErrUnknownScheme is wrapped when a store or sink URL names a scheme
	// no imported driver or sink registered.
	ErrUnknownScheme = errors.New("trustlog: unknown scheme")
	// ErrInvalidURL is wrapped when a store or sink URL cannot be used.
	ErrInvalidURL = errors.New("trustlog: invalid URL")
	// ErrInvalidConfig is wrapped by configuration errors that name the
	// offending field.
	ErrInvalidConfig = errors.New("trustlog: invalid configuration")
	// ErrStrategy is returned when a call does not fit the client's strategy
	// (RecordTx with PublishOnly, for instance).
	ErrStrategy = errors.New("trustlog: not available with this strategy")
	// ErrClosed is returned by calls on a closed client, store or sink.
	ErrClosed = errors.New("trustlog: closed")
	// ErrLeaseHeld is returned when a named lease is held by someone else.
	ErrLeaseHeld = errors.New("trustlog: lease held by another holder")
	// ErrFenced is returned by Store.Advance and SettleRetries when the
	// partition has a newer owner (its generation moved on) or its cursor
	// moved: the caller lost the partition and must stop publishing it.
	ErrFenced = errors.New("trustlog: partition taken by another owner")
	// ErrConflict is returned by Store.Append when another sequencer moved
	// the tree first; nothing was written.
	ErrConflict = errors.New("trustlog: sequencer conflict")
	// ErrNoReplay is returned by OpenReplayer for a sink that cannot be
	// read back.
	ErrNoReplay = errors.New("trustlog: sink cannot be read back")
	// ErrInvalidQuery is wrapped by every *QueryError: an Inspector
	// refused a FindQuery.
	ErrInvalidQuery = errors.New("trustlog: invalid query")
)

// ValidationError says which field of which operation is wrong and why. It
// wraps ErrInvalidOperation.
type ValidationError struct {
	// Index is the operation's position in the batch passed to Record.
	Index int
	// OpID is the operation's id when it has one.
	OpID string
	// Field is the JSON/column name of the field, e.g. "doid".
	Field string
	// Reason says what is wrong, e.g. `must start with do_prefix + "/"`.
	Reason string
}

// Error implements error.
func (e *ValidationError) Error() string {
	s := "trustlog: invalid operation"
	if e.Index > 0 || e.OpID != "" {
		s += " #" + strconv.Itoa(e.Index)
	}
	if e.OpID != "" {
		s += " (" + e.OpID + ")"
	}
	return s + ": " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrInvalidOperation.
func (e *ValidationError) Unwrap() error { return ErrInvalidOperation }

// ConfigError names a configuration field that is wrong. It wraps
// ErrInvalidConfig.
type ConfigError struct {
	Field  string
	Reason string
}

// Error implements error.
func (e *ConfigError) Error() string {
	return "trustlog: invalid configuration: " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

// QueryError names the FindQuery field an Inspector refused and why. It
// wraps ErrInvalidQuery.
type QueryError struct {
	// Field is the FindQuery field's name, e.g. "State"; "" when the
	// query as a whole is refused (it selects nothing through an index).
	Field  string
	Reason string
}

// Error implements error.
func (e *QueryError) Error() string {
	if e.Field == "" {
		return "trustlog: invalid query: " + e.Reason
	}
	return "trustlog: invalid query: " + e.Field + ": " + e.Reason
}

// Unwrap returns ErrInvalidQuery.
func (e *QueryError) Unwrap() error { return ErrInvalidQuery }

// PermanentError marks a publishing error that retrying cannot fix (a
// message over the broker's size limit, an unknown topic with creation off).
// The engine sends such an operation to dead at once instead of retrying it.
type PermanentError struct{ Err error }

// Error implements error.
func (e *PermanentError) Error() string { return "permanent: " + e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a *PermanentError; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is or wraps a *PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

func configErr(field, format string, args ...any) error {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// UnavailableError marks a publishing error that is the sink's state, not
// the message's fault: the broker is unreachable, the connection dropped,
// the sink is closed. The engine does not count it as an attempt of the
// operation; it gives the batch back and pauses (circuit breaker) with a
// growing delay until the sink accepts again, so an outage of any length
// never sends an operation to dead.
type UnavailableError struct{ Err error }

// Error implements error.
func (e *UnavailableError) Error() string { return "sink unavailable: " + e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *UnavailableError) Unwrap() error { return e.Err }

// Unavailable wraps err as an *UnavailableError; nil stays nil.
func Unavailable(err error) error {
	if err == nil {
		return nil
	}
	return &UnavailableError{Err: err}
}

// IsUnavailable reports whether err is or wraps an *UnavailableError.
func IsUnavailable(err error) bool {
	var u *UnavailableError
	return errors.As(err, &u)
}
