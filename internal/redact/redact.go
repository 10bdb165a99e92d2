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

// userinfo matches "user:password@" in anything URL-like, including
// go-sql-driver DSNs ("user:pass@tcp(host)/db") that net/url rejects.
var userinfo = regexp.MustCompile(`^([a-zA-Z][a-zA-Z0-9+.-]*://)?([^:@/\s]*):([^@\s]*)@`)

// URL returns s with the password of its user info and the values of secret
// parameters replaced by Mask. It never fails: a string it cannot parse, or
// an opaque URL ("scheme:anything", no "//"), is scrubbed by pattern, and
// so is what is left of a parsed one ("name=value" in its path).
func URL(s string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" && u.Opaque == "" && !strings.Contains(s, "@tcp(") {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Mask)
		}
		if u.RawQuery != "" {
			q := u.Query()
			for k := range q {
				if secretParams.MatchString(k) {
					q.Set(k, Mask)
				}
			}
			u.RawQuery = q.Encode()
		}
		return keyword.ReplaceAllString(strings.Replace(u.String(), url.QueryEscape(Mask), Mask, -1), "${1}="+Mask)
	}
	s = userinfo.ReplaceAllString(s, "${1}${2}:"+Mask+"@")
	return keyword.ReplaceAllString(s, "${1}="+Mask)
}
