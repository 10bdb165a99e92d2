// Package redact removes secrets (passwords, tokens, keys) from connection
// strings before they reach a log line or an error message. Every place
// trustlog prints a store or sink URL goes through URL.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces a secret.
const Mask = "xxxxx"

// Unparseable is what a URL parser says of a URL it cannot parse, or whose
// user info is ambiguous (see AmbiguousUserInfo), instead of quoting the
// URL or its parser's error: either may hold the password.
const Unparseable = "cannot be parsed (a character in the password such as / ? # or space must be percent-encoded)"

// secretName is a parameter name whose value is a secret: "pass", or any
// name ending in a secret word (password, sasl_password, db_password,
// sslpassword, client_secret, auth_token, api-key, private_key…).
const secretName = `(?:[\w.-]*(?:password|passwd|pwd|secret|token|api[-_]?key|private[-_]?key)|pass)`

// secretParams matches query or keyword parameter names whose value is a
// secret.
var secretParams = regexp.MustCompile(`(?i)^` + secretName + `$`)

// keyword matches "name=value" pairs (PostgreSQL keyword DSNs, query
// strings that failed to parse) whose name is a secret.
var keyword = regexp.MustCompile(`(?i)\b(` + secretName + `)=('[^']*'|[^\s&;]*)`)

// userinfo matches "user:password@" at the start of a string before any
// "scheme://", such as go-sql-driver DSNs ("user:pass@tcp(host)/db") that
// net/url rejects. The password runs to the last "@" of the first word,
// as go-sql-driver reads it: a password may hold "@" ("u:@pw@host" has
// the password "@pw").
var userinfo = regexp.MustCompile(`^([^:@/\s]*):(\S*)@`)

// authority matches the "scheme://" of a URL ("//" alone too, and
// schemes that are not valid ones), at the start of a string or after a
// character no scheme holds (a quote in an error message).
var authority = regexp.MustCompile(`(?:^|[^a-zA-Z0-9+.-])(?:[a-zA-Z0-9+.-]*:)?//`)

// URL returns s with the password of its user info and the values of secret
// parameters replaced by Mask; the user stays. It never fails. The user
// info of a "scheme://" URL is everything up to the last "@", as a URL
// parser takes it; when it holds a character that would end it earlier
// (/ ? # or a space, unencoded in a password) it is masked whole, user
// included (see AmbiguousUserInfo). A string it cannot parse, or an
// opaque URL ("scheme:anything", no "//"), is scrubbed by pattern, and so
// is what is left of a parsed one ("name=value" in its path). A URL may be
// quoted in a longer string, such as a word of an error message.
func URL(s string) string {
	if m := userinfo.FindStringIndex(s); m != nil && !strings.Contains(s[:m[1]], "://") {
		s = userinfo.ReplaceAllString(s, "${1}:"+Mask+"@")
	}
	if m := authority.FindStringIndex(s); m != nil {
		start := m[1]
		if end, ok := userInfoEnd(s[start:]); ok {
			end += start
			if info := s[start:end]; !plainUserInfo(info) {
				s = s[:start] + Mask + s[end:]
			} else if user, _, hasPassword := strings.Cut(info, ":"); hasPassword {
				s = s[:start] + user + ":" + Mask + s[end:]
			}
		}
	}
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Opaque == "" && !strings.Contains(s, "@tcp(") && u.RawQuery != "" {
		if i := strings.Index(s, "?"+u.RawQuery); i >= 0 {
			i++
			s = s[:i] + maskQuery(u.RawQuery) + s[i+len(u.RawQuery):]
		}
	}
	return keyword.ReplaceAllString(s, "${1}="+Mask)
}

// maskQuery masks the value of each secret parameter of a raw query
// (names compared unescaped, so "pass%77ord" is one) and keeps everything
// else as it was: the order, the escapes, and the text of an error
// message that followed the URL.
func maskQuery(raw string) string {
	params := strings.Split(raw, "&")
	for i, p := range params {
		k, _, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if secretParams.MatchString(name) {
			params[i] = k + "=" + Mask
		}
	}
	return strings.Join(params, "&")
}

// AmbiguousUserInfo reports whether s, a "scheme://" URL, has user info
// that a URL parser cannot tell from what follows: an "@" after a
// character that ends the user info early (/ ? # or a space, unencoded in
// a password) or that user info cannot hold. A parser reads part of such
// a password as the port, path, query or fragment, or refuses the URL
// with an error that quotes it: a store or sink parser refuses s, saying
// Unparseable and quoting nothing of it. A path holding "@" with no user
// info before it (sqlite:///dir/a@b.db) is not ambiguous.
func AmbiguousUserInfo(s string) bool {
	m := authority.FindStringIndex(s)
	if m == nil || m[0] != 0 || strings.IndexByte("+-.:/", s[0]) < 0 && !isAlnum(s[0]) {
		return false // no "scheme://" at the start
	}
	end, ok := userInfoEnd(s[m[1]:])
	return ok && !plainUserInfo(s[m[1]:m[1]+end])
}

// HasPassword reports whether s, a "scheme://" URL, has user info holding
// a password (or user info a parser cannot delimit; see
// AmbiguousUserInfo): what URL masks. A store that takes everything after
// "scheme://" as a file path refuses such a URL rather than quote the
// password back as a path.
func HasPassword(s string) bool {
	m := authority.FindStringIndex(s)
	if m == nil || m[0] != 0 {
		return false
	}
	end, ok := userInfoEnd(s[m[1]:])
	if !ok {
		return false
	}
	info := s[m[1] : m[1]+end]
	return !plainUserInfo(info) || strings.Contains(info, ":")
}

// userInfoEnd returns where the user info of rest, what follows a
// "scheme://", ends: at its last "@". There is none without an "@", or
// when an absolute path with no ":" before the "@" starts rest (a file
// name holding "@").
func userInfoEnd(rest string) (int, bool) {
	at := strings.LastIndexByte(rest, '@')
	if at < 0 || strings.HasPrefix(rest, "/") && !strings.Contains(rest[:at], ":") {
		return 0, false
	}
	return at, true
}

// plainUserInfo reports whether info holds only what a URL's user info
// may (RFC 3986: unreserved, sub-delims, ":", percent escapes; "@" too,
// as it ends at the last one): nothing that would end it earlier.
func plainUserInfo(info string) bool {
	for _, c := range []byte(info) {
		if !isAlnum(c) && strings.IndexByte("-._~!$&'()*+,;=:%@", c) < 0 {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}
