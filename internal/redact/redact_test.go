package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, secret string }{
		{"postgres://app:s3cr3t@localhost:5432/app?sslmode=disable", "s3cr3t"},
		{"mysql://root:hunter2@127.0.0.1:3306/test", "hunter2"},
		{"app:hunter2@tcp(127.0.0.1:3306)/test?parseTime=true", "hunter2"},
		{"host=localhost user=app password=opensesame dbname=app", "opensesame"},
		{"host=localhost password='open sesame' dbname=app", "open sesame"},
		{"pulsar://broker:6650/persistent://t/n/topic?token=eyJhbGciOi", "eyJhbGciOi"},
		{"kafka://b1:9092/ops?sasl_mechanism=PLAIN&sasl_user=u&sasl_password=pw123", "pw123"},
		{"kafka://u:p%40ss@b1:9092/ops", "p@ss"},
		{"::not a url:: password=abc123", "abc123"},
		{"host=db db_password=abc123def", "abc123def"},
		{"0password=0000000", "0000000"}, // found by FuzzParseURL
		{"A:password=000000", "000000"},  // found by FuzzParseURL: an opaque URL
		{"a:app:pw123456@host", "pw123456"},
		{"kafka://b1:9092/password=abc12345", "abc12345"},
		{"postgres://db/app?app_password=xyz789&sslmode=disable", "xyz789"},
		{"kafka://b1:9092/ops?sasl.password=pw456", "pw456"},
	}
	for _, c := range cases {
		got := URL(c.in)
		if strings.Contains(got, c.secret) || (strings.Contains(c.in, "%40") && strings.Contains(got, "p%40ss")) {
			t.Errorf("URL(%q) = %q still holds the secret", c.in, got)
		}
		if !strings.Contains(got, Mask) {
			t.Errorf("URL(%q) = %q has no mask", c.in, got)
		}
	}
	if got := URL("sqlite:///tmp/x.db?busy_timeout=5000"); got != "sqlite:///tmp/x.db?busy_timeout=5000" {
		t.Errorf("URL changed a secret-free URL: %q", got)
	}
}

// TestURLKeepsTheRestVerbatim: masking a secret parameter changes nothing
// else of the string: an error message quoting a URL keeps its colon (it
// came out as "?sslmode=disable%3A failed to connect"), its parameter order
// and its escapes.
func TestURLKeepsTheRestVerbatim(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://app:pw@h:5432/db?sslmode=disable: failed to connect":                    "postgres://app:" + Mask + "@h:5432/db?sslmode=disable: failed to connect",
		"postgres://h/db?sslmode=disable&password=pw: failed to connect":                    "postgres://h/db?sslmode=disable&password=" + Mask,
		"postgres://h/db?password=pw&sslmode=disable: failed to connect":                    "postgres://h/db?password=" + Mask + "&sslmode=disable: failed to connect",
		"kafka://b:9092/ops?z=1&sasl_password=pw&a=%2F#frag":                                "kafka://b:9092/ops?z=1&sasl_password=" + Mask + "&a=%2F#frag",
		"kafka://b:9092/ops?pass%77ord=pw&x=y":                                              "kafka://b:9092/ops?pass%77ord=" + Mask + "&x=y",
		`dial "pulsar://b:6650/persistent://t/n/x?token=abc&x=1": connection refused (x:1)`: `dial "pulsar://b:6650/persistent://t/n/x?token=` + Mask + `&x=1": connection refused (x:1)`,
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q)\n got %q\nwant %q", in, got, want)
		}
	}
}
