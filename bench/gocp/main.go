// Command gocp is the compiled peer of the convergence benchmark: it serves the same snapshots the
// Atoll zone CP served (captured by the benchmark's first client, written as JSON) with
// github.com/envoyproxy/go-control-plane's snapshot cache and xDS server, SotW and delta ADS.
//
// One snapshot is shared by every node (a constant node hash). The benchmark drives it over stdin:
// a line "set K" installs variant K of the captured snapshots (the state after an even or an odd
// change) and prints "ok K" once the cache holds it; "quit" exits. Per type, the version is a hash
// of that type's resources, so only the types that differ between variants are pushed (SotW), and
// the cache's per-resource hashes send only changed resources (delta), as the Atoll CP does.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	_ "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
)

// snapshotFile is the JSON the benchmark writes: variants[k][typeURL] = base64 resource bytes.
type snapshotFile struct {
	Variants []map[string][]string `json:"variants"`
}

type allNodes struct{}

func (allNodes) ID(*core.Node) string { return "all" }

func load(path string) ([]*cache.Snapshot, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f snapshotFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, err
	}
	var out []*cache.Snapshot
	for _, variant := range f.Variants {
		byType := map[string][]types.Resource{}
		versions := map[string]string{}
		urls := make([]string, 0, len(variant))
		for url := range variant {
			urls = append(urls, url)
		}
		sort.Strings(urls)
		for _, url := range urls {
			h := sha256.New()
			for _, b64 := range variant[url] {
				b, err := base64.StdEncoding.DecodeString(b64)
				if err != nil {
					return nil, err
				}
				h.Write(b)
				msg, err := (&anypb.Any{TypeUrl: url, Value: b}).UnmarshalNew()
				if err != nil {
					return nil, fmt.Errorf("%s: %w", url, err)
				}
				byType[url] = append(byType[url], msg)
			}
			versions[url] = hex.EncodeToString(h.Sum(nil))[:12]
		}
		snap := &cache.Snapshot{}
		for url, items := range byType {
			idx := cache.GetResponseType(url)
			snap.Resources[idx] = cache.NewResources(versions[url], items)
		}
		out = append(out, snap)
	}
	return out, nil
}

func main() {
	port := flag.Int("port", 0, "ADS port on 127.0.0.1")
	file := flag.String("snapshots", "", "snapshot variants (JSON)")
	flag.Parse()
	snaps, err := load(*file)
	if err != nil {
		log.Fatalf("load %s: %v", *file, err)
	}
	ctx := context.Background()
	c := cache.NewSnapshotCache(false, allNodes{}, nil)
	if err := c.SetSnapshot(ctx, "all", snaps[0]); err != nil {
		log.Fatalf("set snapshot: %v", err)
	}
	srv := server.NewServer(ctx, c, nil)
	g := grpc.NewServer(
		grpc.MaxConcurrentStreams(1<<20),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{PermitWithoutStream: true}),
	)
	discovery.RegisterAggregatedDiscoveryServiceServer(g, srv)
	lis, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(*port))
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	go func() {
		if err := g.Serve(lis); err != nil {
			log.Fatalf("serve: %v", err)
		}
	}()
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		fields := strings.Fields(in.Text())
		if len(fields) == 0 {
			continue
		}
		switch fields[0] {
		case "set":
			k, _ := strconv.Atoi(fields[1])
			if err := c.SetSnapshot(ctx, "all", snaps[k%len(snaps)]); err != nil {
				log.Fatalf("set snapshot: %v", err)
			}
			fmt.Println("ok", k)
		case "quit":
			g.Stop()
			return
		}
	}
	g.Stop()
}

var _ = proto.Marshal
