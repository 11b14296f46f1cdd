package endpointapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Backend is what the agent implements behind the API.
type Backend interface {
	Node(ctx context.Context) (NodeInfo, error)
	PutEndpoint(ctx context.Context, ep Endpoint) (EndpointStatus, error)
	// DeleteEndpoint forgets the endpoint; an unknown one is not an error.
	DeleteEndpoint(ctx context.Context, containerID, ifName string) error
	Endpoints(ctx context.Context) ([]EndpointStatus, error)
	Status(ctx context.Context) (Status, error)
}

// BadRequest marks a Backend error as the caller's fault (HTTP 400).
type BadRequest struct{ Err error }

func (b *BadRequest) Error() string { return b.Err.Error() }
func (b *BadRequest) Unwrap() error { return b.Err }

// maxBody bounds a request body.
const maxBody = 1 << 20

// Handler serves the API of b.
func Handler(b Backend, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, r *http.Request, v any, err error) {
		if err != nil {
			code := http.StatusInternalServerError
			var br *BadRequest
			if errors.As(err, &br) {
				code = http.StatusBadRequest
			}
			log.Warn("endpoint API request failed", "method", r.Method, "path", r.URL.Path, "error", err)
			writeJSON(w, code, map[string]string{"error": err.Error()})
			return
		}
		if v == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
	mux.HandleFunc("GET /v1/node", func(w http.ResponseWriter, r *http.Request) {
		n, err := b.Node(r.Context())
		reply(w, r, n, err)
	})
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		s, err := b.Status(r.Context())
		reply(w, r, s, err)
	})
	mux.HandleFunc("GET /v1/endpoints", func(w http.ResponseWriter, r *http.Request) {
		eps, err := b.Endpoints(r.Context())
		if eps == nil {
			eps = []EndpointStatus{}
		}
		reply(w, r, eps, err)
	})
	mux.HandleFunc("PUT /v1/endpoints/{id}/{ifname}", func(w http.ResponseWriter, r *http.Request) {
		var ep Endpoint
		dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&ep); err != nil {
			reply(w, r, nil, &BadRequest{fmt.Errorf("endpoint body: %w", err)})
			return
		}
		if dec.More() {
			reply(w, r, nil, &BadRequest{errors.New("endpoint body: data after the JSON object")})
			return
		}
		if ep.ContainerID != r.PathValue("id") || ep.IfName != r.PathValue("ifname") {
			reply(w, r, nil, &BadRequest{fmt.Errorf("endpoint body names %s/%s, URL %s/%s", ep.ContainerID, ep.IfName, r.PathValue("id"), r.PathValue("ifname"))})
			return
		}
		if err := ep.Validate(); err != nil {
			reply(w, r, nil, &BadRequest{err})
			return
		}
		st, err := b.PutEndpoint(r.Context(), ep)
		reply(w, r, st, err)
	})
	mux.HandleFunc("DELETE /v1/endpoints/{id}/{ifname}", func(w http.ResponseWriter, r *http.Request) {
		id, ifn := r.PathValue("id"), r.PathValue("ifname")
		if err := ValidateID(id, ifn); err != nil {
			reply(w, r, nil, &BadRequest{err})
			return
		}
		reply(w, r, nil, b.DeleteEndpoint(r.Context(), id, ifn))
	})
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Serve listens on the UNIX socket path (created 0600, its directory 0700;
// a stale socket file is replaced) and serves b until ctx ends.
func Serve(ctx context.Context, log *slog.Logger, path string, b Backend) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("endpoint API socket %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("endpoint API socket %s: removing stale socket: %w", path, err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("endpoint API socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("endpoint API socket %s: %w", path, err)
	}
	srv := &http.Server{Handler: Handler(b, log), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err = srv.Serve(l)
	<-done
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("endpoint API socket %s: %w", path, err)
}
