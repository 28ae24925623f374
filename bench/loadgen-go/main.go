// Command loadgen is an open-loop (wrk2-style) HTTP/1.1 load generator for bench/dataplane.py.
//
// Request i is due at start + i/rate. One goroutine, locked to its OS thread with a 1 ns timer
// slack, sleeps with nanosleep(2) until -spin before the due instant and spins on the clock for the
// rest (Go's own timers round sub-millisecond waits up to 1 ms), then writes the request on an idle
// keep-alive connection: a connection with no request in flight. If none is idle it dials a new one
// (in its own goroutine, so the schedule does not wait), up to -max-conns; beyond that the request
// waits in a FIFO until a connection frees up (counted as "queued"). Each connection has a reader
// goroutine that parses the response (status line, Content-Length or chunked body), checks the status
// and body size, and records:
//
//   - latency: the *scheduled* instant -> last byte of the response (no coordinated omission: a
//     request that had to wait for a connection is charged the wait);
//   - service: the instant the request was written -> last byte;
//   - lag: scheduled -> written, the generator's own jitter.
//
// Requests due during the first -warmup seconds are sent but not recorded. The result is one JSON
// object on stdout (samples in nanoseconds), including the process's own CPU time (getrusage).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

type conn struct {
	c        net.Conn
	busy     atomic.Bool
	dead     atomic.Bool
	due      atomic.Int64 // ns since start of the in-flight request's schedule
	sent     atomic.Int64
	inflight chan struct{} // one token per request written, read by the reader
}

type result struct {
	LatencyNs  []int64        `json:"latency_ns"`
	ServiceNs  []int64        `json:"service_ns"`
	LagNs      []int64        `json:"lag_ns"`
	Requests   int            `json:"requests"`
	Errors     int            `json:"errors"`
	ErrorKinds map[string]int `json:"error_kinds"`
	Late       int            `json:"late"`
	Queued     int            `json:"queued"`
	Conns      int            `json:"conns"`
	BodyBytes  int64          `json:"body_bytes"`
	CPUSeconds float64        `json:"cpu_seconds"`
	WallS      float64        `json:"wall_s"`
}

type recorder struct {
	mu       sync.Mutex
	r        result
	measureN int64 // requests due at or after this offset (ns) are recorded
}

func (rec *recorder) fail(due int64, kind string) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if due < rec.measureN {
		return
	}
	rec.r.Errors++
	rec.r.ErrorKinds[kind]++
}

func (rec *recorder) ok(due, sent, done int64, body int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if due < rec.measureN {
		return
	}
	rec.r.LatencyNs = append(rec.r.LatencyNs, done-due)
	rec.r.ServiceNs = append(rec.r.ServiceNs, done-sent)
	rec.r.LagNs = append(rec.r.LagNs, sent-due)
	rec.r.BodyBytes += int64(body)
}

// readResponse reads one HTTP/1.1 response; returns status and body length.
func readResponse(br *bufio.Reader) (int, int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(line))
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, fmt.Errorf("bad status line %q", line)
	}
	length, chunked := -1, false
	for {
		h, err := br.ReadSlice('\n')
		if err != nil {
			return 0, 0, err
		}
		if len(h) <= 2 {
			break
		}
		k, v, _ := strings.Cut(string(h), ":")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "content-length":
			length, err = strconv.Atoi(strings.TrimSpace(v))
			if err != nil {
				return 0, 0, fmt.Errorf("bad content-length %q", v)
			}
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(v), "chunked")
		}
	}
	if chunked {
		total := 0
		for {
			l, err := br.ReadSlice('\n')
			if err != nil {
				return 0, 0, err
			}
			size, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(string(l), ";", 2)[0]), 16, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("bad chunk size %q", l)
			}
			if _, err := br.Discard(int(size) + 2); err != nil {
				return 0, 0, err
			}
			if size == 0 { // no trailers expected: the "0\r\n" was followed by "\r\n"
				return status, total, nil
			}
			total += int(size)
		}
	}
	if length < 0 {
		return 0, 0, errors.New("response without Content-Length")
	}
	if _, err := br.Discard(length); err != nil {
		return 0, 0, err
	}
	return status, length, nil
}

func (c *conn) read(rec *recorder, start time.Time, expect int, wg *sync.WaitGroup) {
	defer wg.Done()
	br := bufio.NewReaderSize(c.c, 64*1024)
	for range c.inflight {
		status, n, err := readResponse(br)
		done := int64(time.Since(start))
		due, sent := c.due.Load(), c.sent.Load()
		if err != nil {
			kind := "read"
			if errors.Is(err, io.EOF) {
				kind = "closed"
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				kind = "timeout"
			}
			rec.fail(due, kind)
			c.dead.Store(true)
			c.c.Close()
			c.busy.Store(false)
			for range c.inflight { // drain: the writer may not have seen dead yet
			}
			return
		}
		switch {
		case status != 200:
			rec.fail(due, "status "+strconv.Itoa(status))
		case expect >= 0 && n != expect:
			rec.fail(due, "body "+strconv.Itoa(n)+" bytes")
		default:
			rec.ok(due, sent, done, n)
		}
		c.busy.Store(false)
	}
}

func setTimerSlack() {
	const prSetTimerslack = 29
	syscall.RawSyscall(syscall.SYS_PRCTL, prSetTimerslack, 1, 0)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "host:port to send GET requests to")
	path := flag.String("path", "/", "request path")
	host := flag.String("host", "backend", "Host header")
	rate := flag.Float64("rate", 1000, "requests per second")
	seconds := flag.Float64("seconds", 10, "measured duration")
	warmup := flag.Float64("warmup", 1, "unrecorded lead-in, seconds")
	maxConns := flag.Int("max-conns", 64, "most connections open at once")
	spin := flag.Duration("spin", 100*time.Microsecond, "spin on the clock for this long before each send")
	expect := flag.Int("expect-bytes", -1, "body size every response must have (-1: any)")
	drain := flag.Duration("drain", 5*time.Second, "wait this long for the last responses")
	flag.Parse()

	runtime.LockOSThread()
	setTimerSlack()
	req := []byte("GET " + *path + " HTTP/1.1\r\nHost: " + *host + "\r\nUser-Agent: atoll-bench\r\n\r\n")
	interval := float64(time.Second) / *rate
	total := int(*rate * (*seconds + *warmup))
	rec := &recorder{measureN: int64(*warmup * float64(time.Second))}
	rec.r.ErrorKinds = map[string]int{}
	var wg sync.WaitGroup
	var conns []*conn
	newConns := make(chan *conn, *maxConns)
	dialing := 0
	var pending []int64 // due offsets waiting for a connection
	start := time.Now().Add(5 * time.Millisecond)

	send := func(c *conn, due int64) {
		c.busy.Store(true)
		c.due.Store(due)
		sent := int64(time.Since(start))
		c.sent.Store(sent)
		if sent-due > int64(time.Millisecond) && due >= rec.measureN {
			rec.r.Late++ // only this goroutine touches Late
		}
		c.inflight <- struct{}{}
		if _, err := c.c.Write(req); err != nil {
			c.dead.Store(true)
			c.c.Close() // the reader fails the request and exits
		}
	}
	dial := func(due int64) {
		nc, err := net.DialTimeout("tcp", *addr, 5*time.Second)
		if err != nil {
			rec.fail(due, "connect")
			newConns <- nil
			return
		}
		nc.(*net.TCPConn).SetNoDelay(true)
		c := &conn{c: nc, inflight: make(chan struct{}, 1)}
		wg.Add(1)
		go c.read(rec, start, *expect, &wg)
		c.busy.Store(true) // reserved for the request that asked for it
		c.due.Store(due)
		newConns <- c
	}
	idle := func() *conn {
		for _, c := range conns {
			if !c.busy.Load() && !c.dead.Load() {
				return c
			}
		}
		return nil
	}
	collect := func() {
		for {
			select {
			case c := <-newConns:
				dialing--
				if c != nil {
					conns = append(conns, c)
					send(c, c.due.Load())
				}
			default:
				return
			}
		}
	}
	live := func() int {
		n := 0
		for _, c := range conns {
			if !c.dead.Load() {
				n++
			}
		}
		return n
	}

	for i := 0; i < total; i++ {
		due := int64(float64(i) * interval)
		if due >= rec.measureN {
			rec.r.Requests++
		}
		for {
			collect()
			left := time.Duration(due - int64(time.Since(start)))
			if left <= *spin {
				break
			}
			wait := left - *spin
			if wait > 200*time.Microsecond && (len(pending) > 0 || dialing > 0) {
				wait = 200 * time.Microsecond // keep looking for freed connections
			}
			ts := syscall.NsecToTimespec(int64(wait))
			syscall.Nanosleep(&ts, nil)
			for len(pending) > 0 {
				c := idle()
				if c == nil {
					break
				}
				send(c, pending[0])
				pending = pending[1:]
			}
		}
		for int64(time.Since(start)) < due {
		}
		for len(pending) > 0 { // older requests first
			c := idle()
			if c == nil {
				break
			}
			send(c, pending[0])
			pending = pending[1:]
		}
		if c := idle(); c != nil && len(pending) == 0 {
			send(c, due)
		} else if live()+dialing < *maxConns && len(pending) == 0 {
			dialing++
			go dial(due)
		} else {
			pending = append(pending, due)
			if due >= rec.measureN {
				rec.r.Queued++
			}
		}
	}
	deadline := time.Now().Add(*drain)
	for (len(pending) > 0 || dialing > 0) && time.Now().Before(deadline) {
		collect()
		for len(pending) > 0 {
			c := idle()
			if c == nil {
				break
			}
			send(c, pending[0])
			pending = pending[1:]
		}
		time.Sleep(100 * time.Microsecond)
	}
	for _, due := range pending {
		rec.fail(due, "no connection")
	}
	for _, c := range conns {
		for c.busy.Load() && !c.dead.Load() && time.Now().Before(deadline) {
			time.Sleep(100 * time.Microsecond)
		}
		if c.busy.Load() && !c.dead.Load() {
			c.c.SetReadDeadline(time.Now()) // the reader records a timeout
		}
		close(c.inflight)
	}
	wg.Wait()
	for _, c := range conns {
		c.c.Close()
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	rec.r.CPUSeconds = float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
	rec.r.WallS = time.Since(start).Seconds()
	rec.r.Conns = len(conns)
	json.NewEncoder(os.Stdout).Encode(&rec.r)
}
