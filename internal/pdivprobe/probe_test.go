package pdivprobe

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
	plog "github.com/apache/pulsar-client-go/pulsar/log"
	"github.com/go-trustlog/trustlog/sinks/pulsar/pulsartest"
	"github.com/sirupsen/logrus"
)

const (
	realURL      = "pulsar://127.0.0.1:6650"
	realAdmin    = "http://127.0.0.1:8080"
	privURL      = "pulsar://127.0.0.1:16650"
	privAdmin    = "http://127.0.0.1:18080"
	privDir      = "/tmp/pdiv/broker"
	privPIDFile  = "/tmp/pdiv/broker.pid"
	servicesPath = "/work/main/scripts/services.sh"
)

type target struct {
	name  string
	url   string
	admin string
	pt    *pulsartest.Broker
}

func targets(t *testing.T, opts ...pulsartest.Option) []target {
	pt := pulsartest.Start(t, opts...)
	return []target{{"pulsartest", pt.URL(), "", pt}, {"real", realURL, realAdmin, nil}}
}

func newTopic(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return "persistent://public/default/pdiv-" + prefix + "-" + hex.EncodeToString(b[:])
}

func logger() plog.Logger {
	l := logrus.New()
	l.SetLevel(logrus.ErrorLevel)
	if os.Getenv("PDIV_VERBOSE") != "" {
		l.SetLevel(logrus.InfoLevel)
	}
	return plog.NewLoggerWithLogrus(l)
}

func client(t testing.TB, url string) pulsar.Client {
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, OperationTimeout: 10 * time.Second, ConnectionTimeout: 5 * time.Second, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func admin(base, method, path, body string) (int, string) {
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return -1, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func adminPath(topic string) string {
	return "/admin/v2/persistent/" + strings.TrimPrefix(topic, "persistent://")
}

func i64(v int64) *int64 { return &v }

// sendIDs sends one message per id (explicit SequenceID, payload "tag-id") asynchronously, then
// flushes and waits; returns "id:msgid|err" results.
func sendIDs(p pulsar.Producer, tag string, ids []int64) []string {
	var mu sync.Mutex
	res := make([]string, len(ids))
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		i, id := i, id
		p.SendAsync(context.Background(), &pulsar.ProducerMessage{
			Payload: []byte(fmt.Sprintf("%s-%d", tag, id)), SequenceID: i64(id),
		}, func(mid pulsar.MessageID, _ *pulsar.ProducerMessage, err error) {
			mu.Lock()
			if err != nil {
				res[i] = fmt.Sprintf("%d:ERR(%v)", id, err)
			} else {
				res[i] = fmt.Sprintf("%d:%d:%d:%d", id, mid.LedgerID(), mid.EntryID(), mid.BatchIdx())
			}
			mu.Unlock()
			wg.Done()
		})
	}
	p.Flush()
	wg.Wait()
	return res
}

// readAll reads the whole topic from earliest with a throwaway consumer (works on partitioned topics).
func readAll(t testing.TB, url, topic string) []string {
	c := client(t, url)
	cons, err := c.Subscribe(pulsar.ConsumerOptions{Topic: topic, SubscriptionName: "pdiv-read-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest, Type: pulsar.Exclusive})
	if err != nil {
		return []string{"SUBSCRIBE-ERR: " + err.Error()}
	}
	defer func() { cons.Unsubscribe(); cons.Close() }()
	var out []string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		m, err := cons.Receive(ctx)
		cancel()
		if err != nil {
			return out
		}
		cons.Ack(m)
		s := string(m.Payload())
		if len(s) > 40 {
			s = s[:20] + fmt.Sprintf("...(%d bytes)", len(s))
		}
		out = append(out, s)
	}
}

// readerCount reads with a (non-durable) reader from Earliest: leaves no subscription.
func readerCount(t testing.TB, url, topic string) (int, error) {
	c := client(t, url)
	r, err := c.CreateReader(pulsar.ReaderOptions{Topic: topic, StartMessageID: pulsar.EarliestMessageID()})
	if err != nil {
		return -1, err
	}
	defer r.Close()
	n := 0
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := r.Next(ctx)
		cancel()
		if err != nil {
			return n, nil
		}
		n++
	}
}

func producer(t testing.TB, c pulsar.Client, topic, name string, batching bool) pulsar.Producer {
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: name, DisableBatching: !batching,
		BatchingMaxMessages: 100, BatchingMaxPublishDelay: 10 * time.Millisecond, SendTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("create producer: %v", err)
	}
	return p
}

// nextAutoID opens the name again and sends one message without SequenceID (non-batched): the id the
// client gives it is the broker's last_sequence_id + 1.
func nextAutoID(t testing.TB, c pulsar.Client, topic, name string) string {
	p := producer(t, c, topic, name, false)
	defer p.Close()
	before := p.LastSequenceID()
	_, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("auto")})
	return fmt.Sprintf("LastSequenceID()before=%d autoSendErr=%v autoID=%d (=> broker last_sequence_id=%d)", before, err, p.LastSequenceID(), p.LastSequenceID()-1)
}

func rng(a, b int64) []int64 {
	var r []int64
	for i := a; i <= b; i++ {
		r = append(r, i)
	}
	return r
}

// ---------- 1. dedup granularity ----------

func TestDedupGranularity(t *testing.T) {
	cases := []struct {
		name       string
		b1, b2     bool
		ids1, ids2 []int64
	}{
		{"s1batched_0-9_s2batched_5-14", true, true, rng(0, 9), rng(5, 14)},
		{"s1single_0-9_s2batched_5-14", false, true, rng(0, 9), rng(5, 14)},
		{"s1single_0-9_s2single_5-14", false, false, rng(0, 9), rng(5, 14)},
		{"s1batched_0-9_s2single_5-14", true, false, rng(0, 9), rng(5, 14)},
		{"s1single_0-9_s2batched_10,5,6,7,11", false, true, rng(0, 9), []int64{10, 5, 6, 7, 11}},
		{"s1batched_0-9_s2batched_0-9again", true, true, rng(0, 9), rng(0, 9)},
		{"s1batched_0-9_s2batched_1-3", true, true, rng(0, 9), rng(1, 3)},
	}
	for _, tg := range targets(t) {
		for _, cs := range cases {
			topic := newTopic("g")
			name := "pdiv-prod"
			c := client(t, tg.url)
			p := producer(t, c, topic, name, cs.b1)
			r1 := sendIDs(p, "a", cs.ids1)
			p.Close()
			p = producer(t, c, topic, name, cs.b2)
			before := p.LastSequenceID()
			r2 := sendIDs(p, "b", cs.ids2)
			after := p.LastSequenceID()
			p.Close()
			auto := nextAutoID(t, c, topic, name)
			t.Logf("[%s] %s\n  s1=%v\n  s2(LastSeqID before=%d after=%d)=%v\n  %s\n  stored=%v", tg.name, cs.name, r1, before, after, r2, auto, readAll(t, tg.url, topic))
		}
	}
}

// ---------- 2. last sequence id, partitioned ----------

func TestLastSeqPartitioned(t *testing.T) {
	for _, tg := range targets(t) {
		topic := newTopic("part")
		if tg.pt != nil {
			tg.pt.CreatePartitionedTopic(topic, 3)
		} else {
			code, body := admin(tg.admin, "PUT", adminPath(topic)+"/partitions", "3")
			t.Logf("create partitioned: %d %s", code, body)
		}
		c := client(t, tg.url)
		router := func(m *pulsar.ProducerMessage, _ pulsar.TopicMetadata) int {
			n, _ := strconv.Atoi(m.Properties["p"])
			return n
		}
		mk := func() pulsar.Producer {
			p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "pdiv-pp", DisableBatching: true, MessageRouter: router})
			if err != nil {
				t.Fatal(err)
			}
			return p
		}
		p := mk()
		for _, x := range [][2]int64{{0, 0}, {0, 1}, {0, 2}, {1, 5}, {0, 20}} {
			_, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("p%d-%d", x[0], x[1])), SequenceID: i64(x[1]),
				Properties: map[string]string{"p": strconv.Itoa(int(x[0]))}})
			if err != nil {
				t.Fatal(err)
			}
		}
		p.Close()
		p = mk()
		out := []string{fmt.Sprintf("LastSequenceID() before=%d", p.LastSequenceID())}
		for _, part := range []int{2, 1, 0} {
			_, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("auto"), Properties: map[string]string{"p": strconv.Itoa(part)}})
			out = append(out, fmt.Sprintf("partition %d: auto id=%d err=%v", part, p.LastSequenceID(), err))
		}
		p.Close()
		t.Logf("[%s] partitioned (session1: p0 ids 0,1,2,20; p1 id 5; p2 none): %v", tg.name, out)
	}
}

// ---------- helper subprocess for kill experiments ----------

func TestHelperProducer(t *testing.T) {
	if os.Getenv("PDIV_HELPER") == "" {
		t.Skip("helper")
	}
	url, topic, name := os.Getenv("PDIV_URL"), os.Getenv("PDIV_TOPIC"), os.Getenv("PDIV_NAME")
	n, _ := strconv.Atoi(os.Getenv("PDIV_N"))
	goAfter, _ := strconv.Atoi(os.Getenv("PDIV_GO_AFTER"))
	c, err := pulsar.NewClient(pulsar.ClientOptions{URL: url, Logger: logger()})
	if err != nil {
		fmt.Println("ERR", err)
		return
	}
	p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: name, BatchingMaxMessages: 100, DisableBatching: os.Getenv("PDIV_NOBATCH") != "",
		BatchingMaxPublishDelay: 10 * time.Millisecond, MaxPendingMessages: 100000, SendTimeout: time.Minute})
	if err != nil {
		fmt.Println("ERR", err)
		return
	}
	var mu sync.Mutex
	acked := int64(-1)
	cnt := 0
	goSent := false
	for i := 0; i < n; i++ {
		p.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("old-%09d|", i))},
			func(mid pulsar.MessageID, m *pulsar.ProducerMessage, err error) {
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					cnt++
					s, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(string(m.Payload), "old-"), "|"), 10, 64)
					acked = max(acked, s)
				}
				if cnt >= goAfter && !goSent {
					goSent = true
					fmt.Printf("GO acked=%d maxAckedSeq=%d\n", cnt, acked)
				}
			})
	}
	fmt.Println("ALLQUEUED")
	time.Sleep(time.Hour)
}

func startHelper(t *testing.T, url, topic, name string, n, goAfter int) (*exec.Cmd, string) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProducer$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PDIV_HELPER=1", "PDIV_URL="+url, "PDIV_TOPIC="+topic, "PDIV_NAME="+name,
		"PDIV_N="+strconv.Itoa(n), "PDIV_GO_AFTER="+strconv.Itoa(goAfter))
	out, _ := cmd.StdoutPipe()
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGCONT); cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "GO") || strings.HasPrefix(line, "ERR") {
			go io.Copy(io.Discard, out)
			return cmd, line
		}
	}
	return cmd, "EOF"
}

// claimName tries to create a producer with name until it succeeds or limit passes.
func claimName(t testing.TB, url, topic, name string, limit time.Duration) (pulsar.Producer, time.Duration, []string) {
	c := client(t, url)
	start := time.Now()
	var errs []string
	for time.Since(start) < limit {
		p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: name, DisableBatching: true, SendTimeout: 10 * time.Second})
		if err == nil {
			return p, time.Since(start), errs
		}
		e := err.Error()
		if len(errs) == 0 || errs[len(errs)-1] != e {
			errs = append(errs, fmt.Sprintf("+%v %s", time.Since(start).Round(time.Millisecond), e))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil, time.Since(start), errs
}

func summarize(msgs []string) string {
	oldSeen := map[string]int{}
	var maxOld int64 = -1
	oldAfterNew := 0
	newIdx := -1
	dups := 0
	for i, m := range msgs {
		if strings.HasPrefix(m, "old-") {
			oldSeen[m]++
			if oldSeen[m] > 1 {
				dups++
			}
			v, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(m, "old-"), "|"), 10, 64)
			maxOld = max(maxOld, v)
			if newIdx >= 0 {
				oldAfterNew++
			}
		} else if newIdx < 0 {
			newIdx = i
		}
	}
	return fmt.Sprintf("total=%d distinctOld=%d dupOld=%d maxOldSeq=%d firstNewAt=%d oldStoredAfterNew=%d", len(msgs), len(oldSeen), dups, maxOld, newIdx, oldAfterNew)
}

// ---------- 2b/3. SIGKILL while in flight, and SIGSTOP (hung client) ----------

func TestKillInFlight(t *testing.T) {
	if os.Getenv("PDIV_NOBATCH") != "" {
		t.Log("helper producer: DisableBatching")
	}
	for _, tg := range targets(t) {
		topic := newTopic("kill")
		name := "pdiv-killed"
		cmd, line := startHelper(t, tg.url, topic, name, 200000, 5000)
		cmd.Process.Signal(syscall.SIGKILL)
		killedAt := time.Now()
		p, took, errs := claimName(t, tg.url, topic, name, 90*time.Second)
		if p == nil {
			t.Logf("[%s] KILL: helper said %q; name never freed in %v; errs=%v", tg.name, line, took, errs)
			continue
		}
		before := p.LastSequenceID()
		_, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("new-auto")})
		auto := p.LastSequenceID()
		_, err2 := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("new-auto2")})
		p.Close()
		time.Sleep(2 * time.Second)
		msgs := readAll(t, tg.url, topic)
		t.Logf("[%s] KILL: helper at kill: %q; name free after %v (since kill %v); errs=%v; LastSequenceID before=%d; first auto id=%d (broker last=%d) err=%v err2=%v; stored: %s",
			tg.name, line, took, time.Since(killedAt), errs, before, auto, auto-1, err, err2, summarize(msgs))
	}
}

func TestNameConflictAndHungClient(t *testing.T) {
	for _, tg := range targets(t) {
		tg := tg
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel()
			topic := newTopic("busy")
			name := "pdiv-busy"
			// same process, second client
			c1 := client(t, tg.url)
			p1 := producer(t, c1, topic, name, false)
			_, e2 := client(t, tg.url).CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: name})
			t.Logf("[%s] second producer same name: err=%v", tg.name, e2)
			// same client, same name
			_, e3 := c1.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: name})
			t.Logf("[%s] same client same name: err=%v", tg.name, e3)
			p1.Close()

			// hung client: SIGSTOP the holder
			topic2 := newTopic("hung")
			cmd, line := startHelper(t, tg.url, topic2, name, 20, 20)
			cmd.Process.Signal(syscall.SIGSTOP)
			p, took, errs := claimName(t, tg.url, topic2, name, 120*time.Second)
			t.Logf("[%s] SIGSTOPped holder (%q): claimed=%v after %v; errs=%v", tg.name, line, p != nil, took.Round(time.Millisecond), errs)
			if p != nil {
				p.Close()
			}
			cmd.Process.Kill()
			cmd.Process.Signal(syscall.SIGCONT)
		})
	}
}

// ---------- 4. topic creation ----------

func TestTopicCreation(t *testing.T) {
	for _, tg := range targets(t) {
		c := client(t, tg.url)
		exists := func(topic string) string {
			if tg.pt != nil {
				for _, n := range tg.pt.Topics() {
					if n == topic || strings.HasPrefix(n, topic+"-partition-") {
						return "yes"
					}
				}
				return "no"
			}
			code, body := admin(tg.admin, "GET", "/admin/v2/persistent/public/default", "")
			if code != 200 {
				return fmt.Sprintf("list failed %d", code)
			}
			if strings.Contains(body, topic+"\"") || strings.Contains(body, topic+"-partition-") {
				return "yes"
			}
			return "no"
		}
		// producer on nonexistent
		t1 := newTopic("auto")
		p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: t1})
		var sendErr error
		if err == nil {
			_, sendErr = p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("x")})
			p.Close()
		}
		meta := ""
		if tg.admin != "" {
			_, meta = admin(tg.admin, "GET", adminPath(t1)+"/partitions", "")
		}
		parts, perr := c.TopicPartitions(t1)
		t.Logf("[%s] producer on new topic: create err=%v send err=%v exists=%s adminPartitions=%s TopicPartitions=%v %v", tg.name, err, sendErr, exists(t1), meta, parts, perr)
		// partitioned metadata for nonexistent
		t2 := newTopic("meta")
		parts, perr = c.TopicPartitions(t2)
		t.Logf("[%s] TopicPartitions(nonexistent)=%v err=%v; exists afterwards=%s", tg.name, parts, perr, exists(t2))
		// reader on nonexistent
		t3 := newTopic("reader")
		r, rerr := c.CreateReader(pulsar.ReaderOptions{Topic: t3, StartMessageID: pulsar.EarliestMessageID()})
		hasNext := false
		var nextErr error
		if rerr == nil {
			hasNext = r.HasNext()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, nextErr = r.Next(ctx)
			cancel()
			r.Close()
		}
		t.Logf("[%s] reader on nonexistent: err=%v HasNext=%v Next err=%v; exists afterwards=%s", tg.name, rerr, hasNext, nextErr, exists(t3))
		// consumer on nonexistent
		t4 := newTopic("cons")
		cons, cerr := c.Subscribe(pulsar.ConsumerOptions{Topic: t4, SubscriptionName: "s"})
		if cerr == nil {
			cons.Close()
		}
		t.Logf("[%s] consumer on nonexistent: err=%v; exists afterwards=%s", tg.name, cerr, exists(t4))
		// producer on a partition name of a non-partitioned base
		t5 := newTopic("pn") + "-partition-1"
		p5, e5 := c.CreateProducer(pulsar.ProducerOptions{Topic: t5})
		if e5 == nil {
			_, e5 = p5.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("x")})
			p5.Close()
		}
		t.Logf("[%s] producer on 'X-partition-1' with no partitioned X: err=%v", tg.name, e5)
	}
}

// ---------- 5. message size ----------

func TestMessageSize(t *testing.T) {
	const mib = 5 * 1024 * 1024
	for _, tg := range targets(t) {
		c := client(t, tg.url)
		topic := newTopic("size")
		for _, batching := range []bool{false, true} {
			p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, DisableBatching: !batching, SendTimeout: 8 * time.Second,
				BatchingMaxSize: 128 << 20})
			if err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				size  int
				props int
			}{{mib - 200, 0}, {mib - 100, 0}, {mib - 50, 0}, {mib - 1, 0}, {mib, 0}, {mib + 1, 0}, {mib - 1000, 20000}, {mib - 30000, 20000}} {
				var props map[string]string
				if tc.props > 0 {
					props = map[string]string{"big": strings.Repeat("p", tc.props)}
				}
				start := time.Now()
				_, err := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: make([]byte, tc.size), Properties: props})
				t.Logf("[%s] batching=%v payload=%d (5MiB%+d) props=%d: err=%v (%v)", tg.name, batching, tc.size, tc.size-mib, tc.props, err, time.Since(start).Round(time.Millisecond))
			}
			p.Close()
		}
	}
}

// ---------- 7. retention ----------

func TestRetention(t *testing.T) {
	tgs := targets(t)
	if os.Getenv("PDIV_PRIV") != "" {
		tgs = []target{{"real-private", privURL, privAdmin, nil}}
	}
	for _, tg := range tgs {
		for _, dedupOff := range []bool{false, true} {
			topic := newTopic("ret")
			c := client(t, tg.url)
			p := producer(t, c, topic, "pdiv-ret", false)
			if dedupOff && tg.admin != "" {
				code, body := admin(tg.admin, "POST", adminPath(topic)+"/deduplicationEnabled", "false")
				t.Logf("set topic dedup false: %d %s", code, body)
				time.Sleep(2 * time.Second)
			}
			if dedupOff && tg.pt != nil {
				continue
			}
			for i := 0; i < 10; i++ {
				p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("r")})
			}
			p.Close()
			n1, e1 := readerCount(t, tg.url, topic)
			res := fmt.Sprintf("after close: reader sees %d (%v)", n1, e1)
			if tg.admin != "" {
				_, st := admin(tg.admin, "GET", adminPath(topic)+"/internalStats", "")
				res += "\n   internalStats(before unload)=" + st
				code, _ := admin(tg.admin, "PUT", adminPath(topic)+"/unload", "")
				time.Sleep(3 * time.Second)
				n2, e2 := readerCount(t, tg.url, topic)
				_, st = admin(tg.admin, "GET", adminPath(topic)+"/internalStats", "")
				res += fmt.Sprintf("\n   after unload(%d)+3s: reader sees %d (%v)\n   internalStats=%s", code, n2, e2, st)
				// a second unload triggers another rollover / trim
				admin(tg.admin, "PUT", adminPath(topic)+"/unload", "")
				time.Sleep(3 * time.Second)
				n3, _ := readerCount(t, tg.url, topic)
				res += fmt.Sprintf("\n   after 2nd unload: reader sees %d", n3)
				if w, _ := time.ParseDuration(os.Getenv("PDIV_WAIT")); w > 0 && (dedupOff || os.Getenv("PDIV_WAITALL") != "") {
					time.Sleep(w)
					n4, _ := readerCount(t, tg.url, topic)
					_, st = admin(tg.admin, "GET", adminPath(topic)+"/internalStats", "")
					if i := strings.Index(st, "\"cursors\""); i > 0 {
						st = st[:i]
					}
					res += fmt.Sprintf("\n   after further %v: reader sees %d; stats=%s", w, n4, st)
				}
			} else {
				tg.pt.Restart()
				n2, _ := readerCount(t, tg.url, topic)
				res += fmt.Sprintf("; after Restart: %d", n2)
			}
			t.Logf("[%s] dedupOff=%v %s", tg.name, dedupOff, res)
		}
	}
}

// ---------- 6. broker restart ----------

type restartable struct {
	name    string
	url     string
	stop    func(t *testing.T)
	start   func(t *testing.T)
	readyFn func() bool
}

func privPID() int {
	b, _ := os.ReadFile(privPIDFile)
	n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return n
}

func privReady() bool {
	c1, _ := admin(privAdmin, "GET", "/admin/v2/namespaces/public/default", "")
	c2, _ := admin(privAdmin, "GET", "/admin/v2/brokers/health", "")
	return c1 == 200 && c2 == 200
}

func privStop(t *testing.T, sig syscall.Signal) {
	pid := privPID()
	if pid <= 0 {
		t.Fatal("no private broker pid")
	}
	syscall.Kill(pid, sig)
	for i := 0; i < 600; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("private broker %d did not exit in 60s, SIGKILL", pid)
	syscall.Kill(pid, syscall.SIGKILL)
	time.Sleep(time.Second)
}

func privStart(t *testing.T) {
	out, _ := os.OpenFile("/tmp/pdiv/broker.out", os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	cmd := exec.Command("bash", servicesPath, "exec", "pulsar", privDir, "16650", "18080")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(privPIDFile, []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	go cmd.Wait()
	for i := 0; i < 240; i++ {
		if privReady() {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatal("private broker not ready in 120s")
}

func TestBrokerRestart(t *testing.T) {
	if !privReady() {
		t.Skip("private broker not ready")
	}
	pt := pulsartest.Start(t)
	sig := syscall.SIGTERM
	if os.Getenv("PDIV_CRASH") != "" {
		sig = syscall.SIGKILL
	}
	bs := []restartable{
		{"pulsartest", pt.URL(), func(*testing.T) { pt.Stop() }, func(t *testing.T) {
			time.Sleep(8 * time.Second)
			if err := pt.Restart(); err != nil {
				t.Fatal(err)
			}
		}, nil},
		{"real-private", privURL, func(t *testing.T) { privStop(t, sig) }, privStart, nil},
	}
	for _, b := range bs {
		topic := newTopic("restart")
		c := client(t, b.url)
		p1, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "pdiv-r1", DisableBatching: true, SendTimeout: 3 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		p2, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "pdiv-r2", DisableBatching: true, SendTimeout: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 10; i++ {
			if _, err := p1.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("r1-%d", i))}); err != nil {
				t.Fatal(err)
			}
		}
		p2.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("r2-0")})
		t0 := time.Now()
		b.stop(t)
		stopped := time.Since(t0)
		var mu sync.Mutex
		var events []string
		var wg sync.WaitGroup
		for i := 10; i < 15; i++ {
			wg.Add(1)
			p1.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("r1-%d", i))}, func(mid pulsar.MessageID, m *pulsar.ProducerMessage, err error) {
				mu.Lock()
				events = append(events, fmt.Sprintf("+%v %s -> %v err=%v", time.Since(t0).Round(100*time.Millisecond), m.Payload, mid, err))
				mu.Unlock()
				wg.Done()
			})
		}
		for i := 1; i < 3; i++ {
			wg.Add(1)
			p2.SendAsync(context.Background(), &pulsar.ProducerMessage{Payload: []byte(fmt.Sprintf("r2-%d", i))}, func(mid pulsar.MessageID, m *pulsar.ProducerMessage, err error) {
				mu.Lock()
				events = append(events, fmt.Sprintf("+%v %s -> %v err=%v", time.Since(t0).Round(100*time.Millisecond), m.Payload, mid, err))
				mu.Unlock()
				wg.Done()
			})
		}
		b.start(t)
		up := time.Since(t0)
		wg.Wait()
		// p2 after its timeouts: does it recover?
		_, p2err := p2.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("r2-after")})
		p2last := p2.LastSequenceID()
		p1.Close()
		p2.Close()
		// dedup state after restart
		p, err := c.CreateProducer(pulsar.ProducerOptions{Topic: topic, Name: "pdiv-r1", DisableBatching: true})
		if err != nil {
			t.Fatal(err)
		}
		_, e5 := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("r1-dup5"), SequenceID: i64(5)})
		_, ea := p.Send(context.Background(), &pulsar.ProducerMessage{Payload: []byte("r1-auto")})
		auto := p.LastSequenceID()
		p.Close()
		sort.Strings(events)
		t.Logf("[%s] stop took %v, back after %v\n  outage sends: %v\n  p2(SendTimeout 3s) send after restart err=%v lastSeq=%d\n  reopened r1: explicit seq 5 err=%v; auto err=%v id=%d\n  stored=%v",
			b.name, stopped.Round(time.Millisecond), up.Round(time.Millisecond), events, p2err, p2last, e5, ea, auto, readAll(t, b.url, topic))
		n, _ := readerCount(t, b.url, topic)
		t.Logf("[%s] reader Earliest after restart sees %d", b.name, n)
	}
}
