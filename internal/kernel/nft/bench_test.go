package nft

import (
	"context"
	"testing"

	"github.com/calico-go/calico/internal/testutil/netnstest"
)

// The table of the writer benchmark: 2,000 sets of 100 members and
// 2,000 chains of 10 rules.
const (
	benchSets    = 2000
	benchMembers = 100
	benchChains  = 2000
	benchRules   = 10
)

func benchTable(b *testing.B) (*Table, *netnstest.NS) {
	b.Helper()
	netnstest.RequireRoot(b)
	ns := netnstest.New(b, "nftb")
	tb := New(Options{NetNSFd: ns.Fd()})
	b.Cleanup(func() { tb.Close() })
	fillBench(tb, benchSets, benchMembers, benchChains, benchRules)
	if _, err := tb.Apply(context.Background()); err != nil {
		b.Fatal(err)
	}
	return tb, ns
}

// BenchmarkWriterRewriteOneChain changes one chain of the big table and
// applies: diff, one transaction (flush + 10 rules), kernel commit.
func BenchmarkWriterRewriteOneChain(b *testing.B) {
	tb, _ := benchTable(b)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		tb.SetChain(benchChain(i%benchChains, benchSets, benchRules, i%2+1))
		st, err := tb.Apply(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if st.ChainsWritten != 1 {
			b.Fatalf("stats %+v", st)
		}
	}
}

// BenchmarkWriterInitial writes the whole big table into an empty
// namespace.
func BenchmarkWriterInitial(b *testing.B) {
	netnstest.RequireRoot(b)
	for b.Loop() {
		b.StopTimer()
		ns := netnstest.New(b, "nfti")
		tb := New(Options{NetNSFd: ns.Fd()})
		fillBench(tb, benchSets, benchMembers, benchChains, benchRules)
		b.StartTimer()
		if _, err := tb.Apply(context.Background()); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		tb.Close()
		b.StartTimer()
	}
}

// BenchmarkWriterReadBack reads the big table back and diffs it (the
// periodic refresh).
func BenchmarkWriterReadBack(b *testing.B) {
	tb, _ := benchTable(b)
	ctx := context.Background()
	for b.Loop() {
		tb.MarkForResync()
		st, err := tb.Apply(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if !st.Empty() {
			b.Fatalf("refresh of an unchanged table sent %+v", st)
		}
	}
}
