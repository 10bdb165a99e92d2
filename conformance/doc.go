// Package conformance is the shared test suite every trustlog store and
// sink must pass, exported so that third-party driver and sink authors run
// exactly the tests the built-in ones do.
//
//	func TestConformance(t *testing.T) {
//		conformance.RunStore(t, myStoreHarness)
//		conformance.RunSink(t, mySinkHarness)
//		conformance.RunPair(t, myStoreHarness, memorytest.Harness)
//	}
//
// RunStore checks every Store and Locker method and the compare-and-set
// rules of the state machine. RunSink checks that what a consumer reads is
// what was published, in order per key. RunPair proves the README's
// guarantees end to end with the engine: no loss (abandoned claims, sink
// outages), no phantom (rolled-back transactions), keyed and bounded
// duplicates, strict order per object, cluster safety, poison isolation
// with retry, backoff, dead-lettering and requeue, and bad input refused.
// Each subtest fails when its guarantee breaks.
//
// The suite branches on core.Capabilities instead of asking a store to
// fake what its database cannot do: a store without LISTEN/NOTIFY is
// checked on its polling path, one without SKIP LOCKED on its serialised
// claims.
//
// Harnesses create their own isolated resources (a file, a schema, a
// table prefix, a topic) so every subtest runs in parallel.
package conformance
