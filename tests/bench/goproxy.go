// SPDX-License-Identifier: MIT
//
// The benchmark's Go anchor (run.sh target go-1p): what kubectl proxy does for
// its requests, httputil.ReverseProxy over a pooled http.Transport, standard
// library only, configured as well as a careful user would: every connection
// kept alive (MaxIdleConnsPerHost at least the benchmark's concurrency, no cap
// on connections per host), TLS verified against the test CA with a session
// cache, HTTP/1.1 to the upstream, no compression negotiated on the client's
// behalf, copy buffers pooled, dials that outlive the request that started
// them, and the same Authorization header injected as the nginx anchor's.
// Run with GOMAXPROCS=1 (one core, as nginx-1w and denvrd).
//
//	BENCH_PROXY_AUTH='ApiKey ...' goproxy -listen 127.0.0.1:PORT \
//	        -upstream https://127.0.0.1:PORT -ca ca.pem [-conns 128]
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"time"
)

// bufferPool lends ReverseProxy its 32 KiB copy buffers (without it each
// answer allocates one).
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte  { return *b.p.Get().(*[]byte) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to serve plain HTTP on")
	upstream := flag.String("upstream", "", "upstream base URL (https://host:port)")
	caFile := flag.String("ca", "", "CA certificate (PEM) the upstream's certificate must chain to")
	conns := flag.Int("conns", 128, "idle upstream connections kept (at least the callers' concurrency)")
	flag.Parse()

	auth := os.Getenv("BENCH_PROXY_AUTH")
	target, err := url.Parse(*upstream)
	if err != nil || target.Scheme != "https" || target.Host == "" || auth == "" {
		log.Fatal("need -upstream https://HOST:PORT and BENCH_PROXY_AUTH")
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		log.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		log.Fatalf("%s: no certificate", *caFile)
	}

	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	tlsConfig := &tls.Config{
		RootCAs:            roots,
		ServerName:         target.Hostname(),
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(*conns),
	}
	// Before Go 1.23 the Transport dials with the context of the request
	// that asked for a connection, and that request may meanwhile be
	// served by a connection freed by another one and end: the dial is
	// cancelled mid-handshake (golang/go#59017).  Under load this churns
	// through thousands of TLS handshakes.  So the TCP connection and the
	// TLS handshake get a context of their own; a finished connection
	// nobody waits for any more goes to the idle pool.
	dialTLS := func(_ context.Context, network, addr string) (net.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		raw, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		conn := tls.Client(raw, tlsConfig)
		if err := conn.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, err
		}
		return conn, nil
	}

	transport := &http.Transport{
		Proxy:          nil, // no proxy from the environment
		DialTLSContext: dialTLS,
		// HTTP/1.1 only, as nginx's proxy module: an empty TLSNextProto
		// map and no ForceAttemptHTTP2 keep HTTP/2 off (a DialTLSContext
		// alone would too).
		ForceAttemptHTTP2: false,
		TLSNextProto:      map[string]func(string, *tls.Conn) http.RoundTripper{},
		// Keep every connection opened (the default keeps 2 per host).
		MaxIdleConns:        *conns,
		MaxIdleConnsPerHost: *conns,
		MaxConnsPerHost:     0,
		IdleConnTimeout:     300 * time.Second,
		// Pass the client's Accept-Encoding through instead of asking
		// for gzip and inflating the answer here.
		DisableCompression: true,
	}

	proxy := &httputil.ReverseProxy{
		Director: func(r *http.Request) {
			r.URL.Scheme = target.Scheme
			r.URL.Host = target.Host
			r.Host = ""
			r.Header.Set("Authorization", auth)
			// nil: ReverseProxy adds no X-Forwarded-For (nginx-1w
			// and denvrd add none either).
			r.Header["X-Forwarded-For"] = nil
		},
		Transport:  transport,
		BufferPool: &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}},
	}

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 30 * time.Second, IdleTimeout: 300 * time.Second}
	log.Printf("listening on %s, upstream %s", ln.Addr(), target)
	log.Fatal(srv.Serve(ln))
}
