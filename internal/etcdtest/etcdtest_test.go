package etcdtest

import (
	"context"
	"testing"
	"time"
)

func TestStartRestartKeepsData(t *testing.T) {
	a := Start(t, Options{})
	b := Start(t, Options{Name: "b"})
	if a.Endpoint() == b.Endpoint() {
		t.Fatalf("two servers share endpoint %s", a.Endpoint())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := a.Client(t)
	if _, err := c.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	a.Restart()
	resp, err := c.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "v" {
		t.Fatalf("after restart got %v, want k=v", resp.Kvs)
	}
}
