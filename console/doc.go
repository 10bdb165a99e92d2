// Package console is trustlog's operator console: HTML pages, served by
// `trustlog serve`, that show what a store's relays are doing and let an
// operator act on the operations that did not get through.
//
// # Why
//
// `trustlog status` answers "how far are we" in a terminal, once. An
// operator on call wants more at a glance: is the backlog shrinking, which
// partition is stuck and who owns it, which operations died and why, what
// happened to one object, and to requeue the dead once the cause is
// fixed, without writing SQL. The console reads the store through the
// same Store methods the relays use (Stats, Partitions, Get, ListDead,
// Requeue) and the optional core.Inspector (search, live relays), so it
// works on any driver; a driver without Inspector gets the overview, the
// dead list and the op_id lookup.
//
// # Pages
//
//	GET  /console/                  overview: counts by state, the oldest unpublished
//	                                operation, the sequencer's position, each
//	                                partition's cursor, backlog and owner, the live
//	                                relays, and throughput and backlog over the last
//	                                hour (sampled by the server, drawn as SVG)
//	GET  /console/ops               retrying or dead operations, filtered by DOID,
//	                                error text and age, paged
//	GET  /console/op/<op_id>        one operation: fields, state, position, attempts,
//	                                last error
//	GET  /console/search            by op_id, by DOID (the object's history in order),
//	                                by actor and time range
//	POST /console/requeue           requeue dead operations (admin)
//	GET|POST /console/login         exchange the admin token for a session cookie
//	POST /console/logout
//
// Pages refresh their live parts every few seconds with a small embedded
// script (fetch and swap, no framework, nothing loaded from elsewhere);
// without JavaScript they still work, refreshed by the reload button.
//
// # Security
//
// The console is read-only unless Options.AdminToken is set. A write
// (requeue) then needs the token, either as "Authorization: Bearer
// <token>" (scripts; browsers never send it on their own, so no CSRF) or
// through a session: POST /console/login with the token sets a
// __Host- cookie (HttpOnly, Secure, SameSite=Strict) and every form
// carries that session's CSRF token, checked on POST together with the
// Origin header. Every write is logged with who (bearer or session), from
// where, and what. The token is never rendered or logged.
//
// Every page is rendered with html/template (user-supplied text such as
// DOIDs and errors is escaped; a DOID "<script>" is shown, not run) and
// sent with a Content-Security-Policy that allows only the console's own
// script and stylesheet, X-Content-Type-Options nosniff and frame denial.
// Reads are bounded: lists page by seq with at most core.FindLimitMax
// rows, searches must name a DOID, an actor, a state or an op_id (each
// read through an index), and every request's store calls share a
// timeout.
package console
