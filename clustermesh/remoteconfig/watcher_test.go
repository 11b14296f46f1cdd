package remoteconfig

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strait-net/strait/internal/testkit"

	"github.com/google/go-cmp/cmp"
)

// waitTimeout is how long a test waits for an expected event. It is a
// bound against hangs, not a performance assertion.
const waitTimeout = 20 * time.Second

// event is one Handler call.
type event struct {
	kind string // add, update, invalid, remove
	name string
	rc   RemoteCluster
	err  error
}

func (e event) String() string {
	switch e.kind {
	case "add", "update":
		return fmt.Sprintf("%s %s %v", e.kind, e.name, e.rc.Config.Endpoints)
	case "invalid":
		return fmt.Sprintf("invalid %s: %v", e.name, e.err)
	}
	return e.kind + " " + e.name
}

// recorder is a Handler that records calls on a channel.
type recorder struct{ ch chan event }

func (r *recorder) send(ctx context.Context, e event) {
	select {
	case r.ch <- e:
	case <-ctx.Done():
	}
}
func (r *recorder) Add(ctx context.Context, rc RemoteCluster) {
	r.send(ctx, event{kind: "add", name: rc.Name, rc: rc})
}
func (r *recorder) Update(ctx context.Context, rc RemoteCluster) {
	r.send(ctx, event{kind: "update", name: rc.Name, rc: rc})
}
func (r *recorder) Invalid(ctx context.Context, name string, err error) {
	r.send(ctx, event{kind: "invalid", name: name, err: err})
}
func (r *recorder) Remove(ctx context.Context, name string) {
	r.send(ctx, event{kind: "remove", name: name})
}

// next returns the next event, failing the test after waitTimeout.
func (r *recorder) next(t *testing.T) event {
	t.Helper()
	select {
	case e := <-r.ch:
		t.Logf("handler: %s", e)
		return e
	case <-time.After(waitTimeout):
		t.Fatalf("no handler call within %v", waitTimeout)
		return event{}
	}
}

// expect returns the next event and checks its kind and name.
func (r *recorder) expect(t *testing.T, kind, name string) event {
	t.Helper()
	e := r.next(t)
	if e.kind != kind || e.name != name {
		t.Fatalf("got %s, want %s %s", e, kind, name)
	}
	return e
}

// barrier creates a fresh cluster file and returns every event up to and
// including its Add. The scan that reports it started after barrier was
// called, so it saw every earlier change: any event those changes cause
// is in the returned list.
func (r *recorder) barrier(t *testing.T, dir string) []event {
	t.Helper()
	name := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	writeAtomic(t, filepath.Join(dir, name), plainConfig("http://marker:1"))
	var got []event
	for {
		e := r.next(t)
		if e.kind == "add" && e.name == name {
			return got
		}
		got = append(got, e)
	}
}

// start runs a Watcher of dir until the test ends.
func start(t *testing.T, dir string, opts Options) (*Watcher, *recorder) {
	t.Helper()
	r := &recorder{ch: make(chan event, 1000)}
	w, err := New(testkit.Logger(t), dir, r, opts)
	if err != nil {
		t.Fatal(err)
	}
	runWatcher(t, w)
	select {
	case <-w.Synced():
	case <-time.After(waitTimeout):
		t.Fatal("watcher not synced")
	}
	return w, r
}

func runWatcher(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run() = %v", err)
		}
	})
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	if _, err := New(nil, filepath.Join(dir, "missing"), &recorder{}, Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("New(missing dir) = %v, want fs.ErrNotExist", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := New(nil, file, &recorder{}, Options{}); !errors.Is(err, ErrNotDirectory) {
		t.Errorf("New(file) = %v, want ErrNotDirectory", err)
	}
}

func TestRunTwice(t *testing.T) {
	w, _ := start(t, t.TempDir(), Options{})
	if err := w.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run() = %v, want ErrRunning", err)
	}
}

func TestWatcherInitialScan(t *testing.T) {
	dir := t.TempDir()
	p := newPKI(t)
	p.writeFiles(t, dir)
	writeAtomic(t, filepath.Join(dir, "c1"), tlsConfig("https://c1:2379", ""))
	writeAtomic(t, filepath.Join(dir, "c2"), []byte("endpoints:\n- https://c2\n"))
	writeAtomic(t, filepath.Join(dir, ".c3"), plainConfig("http://c3:1"))
	writeAtomic(t, filepath.Join(dir, "c4.etcd-client.key"), p.key)

	_, r := start(t, dir, Options{Rescan: -1})
	// Synced is closed: the initial scan's calls are all in the channel.
	var got []string
	for len(r.ch) > 0 {
		got = append(got, (<-r.ch).String())
	}
	want := []string{
		"add c1 [https://c1:2379]",
		`invalid c2: ` + filepath.Join(dir, "c2") + `: endpoints[0] "https://c2": remoteconfig: invalid endpoint: missing port`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("initial events mismatch (-want +got):\n%s", diff)
	}
}

func TestWatcherAddUpdateRemove(t *testing.T) {
	dir := t.TempDir()
	_, r := start(t, dir, Options{Rescan: -1})
	path := filepath.Join(dir, "c1")

	writeAtomic(t, path, plainConfig("http://c1:2379"))
	add := r.expect(t, "add", "c1")
	if diff := cmp.Diff([]string{"http://c1:2379"}, add.rc.Config.Endpoints); diff != "" {
		t.Fatalf("add endpoints (-want +got):\n%s", diff)
	}
	if add.rc.Path != path {
		t.Fatalf("add path = %q, want %q", add.rc.Path, path)
	}

	writeAtomic(t, path, plainConfig("http://c1:2380"))
	upd := r.expect(t, "update", "c1")
	if diff := cmp.Diff([]string{"http://c1:2380"}, upd.rc.Config.Endpoints); diff != "" {
		t.Fatalf("update endpoints (-want +got):\n%s", diff)
	}

	// Identical content, rewritten by rename and in place: no event.
	writeAtomic(t, path, plainConfig("http://c1:2380"))
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(plainConfig("http://c1:2380")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := r.barrier(t, dir); len(got) != 0 {
		t.Fatalf("identical rewrites caused events: %v", got)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "remove", "c1")
}

func TestWatcherInvalidKeepsLastGood(t *testing.T) {
	dir := t.TempDir()
	_, r := start(t, dir, Options{Rescan: -1})
	path := filepath.Join(dir, "c1")

	writeAtomic(t, path, plainConfig("http://c1:2379"))
	good := r.expect(t, "add", "c1")

	writeAtomic(t, path, []byte("endpoints:\n- http//c1:2379\n"))
	inv := r.expect(t, "invalid", "c1")
	if !errors.Is(inv.err, ErrInvalidEndpoint) || !strings.Contains(inv.err.Error(), path) || !strings.Contains(inv.err.Error(), "endpoints[0]") {
		t.Fatalf("invalid error = %v, want ErrInvalidEndpoint naming %s and endpoints[0]", inv.err, path)
	}
	// A second bad edit with a different error is reported; losing
	// "endpoints:" altogether is reported too, not ignored.
	writeAtomic(t, path, []byte("garbage\n"))
	inv = r.expect(t, "invalid", "c1")
	if !errors.Is(inv.err, ErrNotClusterFile) {
		t.Fatalf("invalid error = %v, want ErrNotClusterFile", inv.err)
	}
	for _, e := range r.barrier(t, dir) {
		if e.name == "c1" {
			t.Fatalf("bad edits caused %s", e)
		}
	}

	// Restoring the last good content is reported as Update, so the
	// handler can clear its error status.
	writeAtomic(t, path, plainConfig("http://c1:2379"))
	upd := r.expect(t, "update", "c1")
	if upd.rc.Hash != good.rc.Hash {
		t.Fatalf("restored config has a different hash")
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "remove", "c1")
}

func TestWatcherInvalidNeverValid(t *testing.T) {
	dir := t.TempDir()
	w, r := newUnstarted(t, dir, Options{Rescan: 10 * time.Millisecond})
	scans := make(chan struct{}, 1000)
	w.afterScan = func() { scans <- struct{}{} }
	runWatcher(t, w)

	path := filepath.Join(dir, "c9")
	writeAtomic(t, path, []byte("endpoints:\n- http://c9\n"))
	r.expect(t, "invalid", "c9")
	// The same error is not reported again by later scans. Handler calls
	// happen inside a scan, before afterScan, so after three more scans
	// any repeat would already be in the channel.
	for len(scans) > 0 {
		<-scans
	}
	for range 3 {
		select {
		case <-scans:
		case <-time.After(waitTimeout):
			t.Fatal("no rescan")
		}
	}
	if len(r.ch) != 0 {
		t.Fatalf("unexpected event after the first Invalid: %s", <-r.ch)
	}
	// A name only ever seen invalid still gets Remove.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "remove", "c9")
}

func newUnstarted(t *testing.T, dir string, opts Options) (*Watcher, *recorder) {
	t.Helper()
	r := &recorder{ch: make(chan event, 1000)}
	w, err := New(testkit.Logger(t), dir, r, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w, r
}

func TestWatcherCertificateChange(t *testing.T) {
	dir, certDir := t.TempDir(), t.TempDir()
	newPKI(t).writeFiles(t, certDir)
	// No periodic rescan: only the watch on certDir can see the changes.
	_, r := start(t, dir, Options{Rescan: -1})

	writeAtomic(t, filepath.Join(dir, "c1"), tlsConfig("https://c1:2379", certDir))
	add := r.expect(t, "add", "c1")

	writeAtomic(t, filepath.Join(certDir, "ca.crt"), newPKI(t).ca)
	upd := r.expect(t, "update", "c1")
	if upd.rc.Hash == add.rc.Hash {
		t.Fatal("update after CA change has the old hash")
	}

	// A deleted certificate is a per-cluster error naming the file, and
	// does not disconnect.
	crt := filepath.Join(certDir, "tls.crt")
	saved, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(crt); err != nil {
		t.Fatal(err)
	}
	inv := r.expect(t, "invalid", "c1")
	if !errors.Is(inv.err, ErrCertificate) || !strings.Contains(inv.err.Error(), "cert-file "+crt) {
		t.Fatalf("invalid error = %v, want ErrCertificate naming cert-file %s", inv.err, crt)
	}
	writeAtomic(t, crt, saved)
	r.expect(t, "update", "c1")
}

func TestWatcherCertificateDirAppears(t *testing.T) {
	dir := t.TempDir()
	certDir := filepath.Join(t.TempDir(), "later")
	_, r := start(t, dir, Options{Rescan: 50 * time.Millisecond})
	writeAtomic(t, filepath.Join(dir, "c1"), tlsConfig("https://c1:2379", certDir))
	r.expect(t, "invalid", "c1")
	// The directory appears at once, with all its files.
	staging := certDir + ".tmp"
	if err := os.Mkdir(staging, 0o755); err != nil {
		t.Fatal(err)
	}
	newPKI(t).writeFiles(t, staging)
	if err := os.Rename(staging, certDir); err != nil {
		t.Fatal(err)
	}
	// Once the directory exists the rescan picks it up (and watches it).
	r.expect(t, "add", "c1")
}

// k8sProjection builds a Kubernetes secret volume in dir: files live in a
// timestamped directory, "..data" points at it and each key is a symlink
// through "..data".
type k8sProjection struct {
	t   *testing.T
	dir string
	gen int
	cur string
}

func (k *k8sProjection) publish(files map[string][]byte) {
	t := k.t
	t.Helper()
	k.gen++
	ts := fmt.Sprintf("..2024_01_01_00_00_00.%09d", k.gen)
	if err := os.Mkdir(filepath.Join(k.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(k.dir, ts, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tmp := filepath.Join(k.dir, "..data_tmp")
	mustSymlink(t, ts, tmp)
	if err := os.Rename(tmp, filepath.Join(k.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		link := filepath.Join(k.dir, name)
		if _, err := os.Lstat(link); errors.Is(err, fs.ErrNotExist) {
			mustSymlink(t, filepath.Join("..data", name), link)
		}
	}
	if k.cur != "" {
		if err := os.RemoveAll(filepath.Join(k.dir, k.cur)); err != nil {
			t.Fatal(err)
		}
	}
	k.cur = ts
}

func TestWatcherKubernetesSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	k := &k8sProjection{t: t, dir: dir}
	p := newPKI(t)
	files := map[string][]byte{
		"c1":                        tlsConfig("https://c1.mesh.cilium.io:2379", dir),
		"common-etcd-client-ca.crt": p.ca,
		"ca.crt":                    p.ca,
		"tls.crt":                   p.cert,
		"tls.key":                   p.key,
	}
	k.publish(files)
	_, r := start(t, dir, Options{Rescan: -1})
	add := r.expect(t, "add", "c1")
	if add.rc.Config.CertFile != filepath.Join(dir, "tls.crt") {
		t.Fatalf("cert file = %q, want the projected symlink", add.rc.Config.CertFile)
	}

	// New endpoint through a swap of ..data.
	files["c1"] = tlsConfig("https://c1.mesh.cilium.io:2380", dir)
	k.publish(files)
	upd := r.expect(t, "update", "c1")
	if diff := cmp.Diff([]string{"https://c1.mesh.cilium.io:2380"}, upd.rc.Config.Endpoints); diff != "" {
		t.Fatalf("endpoints after swap (-want +got):\n%s", diff)
	}

	// Only the certificates rotate.
	p2 := newPKI(t)
	files["ca.crt"], files["tls.crt"], files["tls.key"] = p2.ca, p2.cert, p2.key
	k.publish(files)
	upd2 := r.expect(t, "update", "c1")
	if upd2.rc.Hash == upd.rc.Hash {
		t.Fatal("certificate rotation kept the hash")
	}

	// A swap with identical content reports nothing.
	k.publish(files)
	if got := r.barrier(t, dir); len(got) != 0 {
		t.Fatalf("identical swap caused events: %v", got)
	}
}

func TestWatcherRescanFallback(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, filepath.Join(sub, "c1"), plainConfig("http://c1:1"))
	mustSymlink(t, "sub/c1", filepath.Join(dir, "c1"))
	_, r := start(t, dir, Options{Rescan: 50 * time.Millisecond})
	r.expect(t, "add", "c1")
	// sub is not watched: only the periodic rescan sees this.
	writeAtomic(t, filepath.Join(sub, "c1"), plainConfig("http://c1:2"))
	upd := r.expect(t, "update", "c1")
	if diff := cmp.Diff([]string{"http://c1:2"}, upd.rc.Config.Endpoints); diff != "" {
		t.Fatalf("endpoints (-want +got):\n%s", diff)
	}
}

func TestWatcherBurstKeepsFinalState(t *testing.T) {
	dir := t.TempDir()
	_, r := start(t, dir, Options{Rescan: -1, Debounce: 20 * time.Millisecond, MaxDelay: 50 * time.Millisecond})
	path := filepath.Join(dir, "c1")
	const n = 200
	for i := 1; i <= n; i++ {
		writeAtomic(t, path, plainConfig(fmt.Sprintf("http://c1:%d", i)))
	}
	final := fmt.Sprintf("http://c1:%d", n)
	var last event
	for _, e := range r.barrier(t, dir) {
		if e.name != "c1" {
			t.Fatalf("unexpected %s", e)
		}
		last = e
	}
	if last.kind == "" || last.rc.Config.Endpoints[0] != final {
		t.Fatalf("last event = %s, want the final state %s", last, final)
	}
}

func TestWatcherDirectoryReplaced(t *testing.T) {
	parent, certDir := t.TempDir(), t.TempDir()
	newPKI(t).writeFiles(t, certDir)
	dir := filepath.Join(parent, "cm")
	for _, d := range []string{dir, dir + ".new"} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeAtomic(t, filepath.Join(dir, "c1"), tlsConfig("https://c1:1", certDir))
	writeAtomic(t, filepath.Join(dir+".new", "c1"), tlsConfig("https://c1:2", certDir))
	// No periodic rescan: only fsnotify events drive this test.
	_, r := start(t, dir, Options{Rescan: -1})
	r.expect(t, "add", "c1")

	// Replace the directory. A scan while it is missing keeps the state.
	if err := os.Rename(dir, filepath.Join(parent, "old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dir+".new", dir); err != nil {
		t.Fatal(err)
	}
	// The watch on certDir triggers a scan, which finds the new directory.
	writeAtomic(t, filepath.Join(certDir, "unrelated"), []byte("x"))
	upd := r.expect(t, "update", "c1")
	if diff := cmp.Diff([]string{"https://c1:2"}, upd.rc.Config.Endpoints); diff != "" {
		t.Fatalf("endpoints (-want +got):\n%s", diff)
	}
	// The new directory is watched: its changes are seen.
	if err := os.Remove(filepath.Join(dir, "c1")); err != nil {
		t.Fatal(err)
	}
	r.expect(t, "remove", "c1")
}
