package dimse

import (
	"context"
	"net"
	"testing"
	"time"
)

// BenchmarkTransfer moves a 512 KiB data set (a CT slice) through send and
// receive over a connected pair, in 16 KiB PDUs as PACSes commonly use:
// the path every retrieved instance takes.
func BenchmarkTransfer(b *testing.B) {
	lim := &limits{maxPDU: 1 << 18, maxInstance: 1 << 30, timeout: time.Minute}
	c1, c2 := net.Pipe()
	defer c1.Close()
	defer c2.Close()
	ctxs := map[byte]presCtx{1: {id: 1, abstract: DefaultStorageClasses[4], syntaxes: []string{implicitLE}}}
	sender := &assoc{conn: c1, peer: "sender", lim: lim, maxSend: 16384, ctxs: ctxs}
	receiver := &assoc{conn: c2, peer: "receiver", lim: lim, ctxs: ctxs}
	cmd := encodeCommand(requestElements(cStoreRQ, 1, DefaultStorageClasses[4], true))
	data := make([]byte, 512<<10)
	b.SetBytes(int64(len(data)))
	errc := make(chan error, 1)
	go func() {
		for i := 0; i < b.N; i++ {
			if err := sender.send(context.Background(), 1, cmd, data); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	for i := 0; i < b.N; i++ {
		m, err := receiver.receive(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if len(m.data) != len(data) {
			b.Fatalf("got %d bytes", len(m.data))
		}
	}
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
}
