package endpointapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
)

// Client talks to an agent's endpoint API socket.
type Client struct {
	path string
	hc   *http.Client
}

// NewClient returns a client of the socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}
	return &Client{path: path, hc: &http.Client{Transport: tr}}
}

// Node returns the node's CIDR, addresses and pod MTU.
func (c *Client) Node(ctx context.Context) (NodeInfo, error) {
	var n NodeInfo
	return n, c.do(ctx, http.MethodGet, "/v1/node", nil, &n)
}

// PutEndpoint tells the agent about an endpoint (idempotent).
func (c *Client) PutEndpoint(ctx context.Context, ep Endpoint) (EndpointStatus, error) {
	var st EndpointStatus
	return st, c.do(ctx, http.MethodPut, "/v1/endpoints/"+url.PathEscape(ep.ContainerID)+"/"+url.PathEscape(ep.IfName), ep, &st)
}

// DeleteEndpoint tells the agent an endpoint is gone.
func (c *Client) DeleteEndpoint(ctx context.Context, containerID, ifName string) error {
	return c.do(ctx, http.MethodDelete, "/v1/endpoints/"+url.PathEscape(containerID)+"/"+url.PathEscape(ifName), nil, nil)
}

// Endpoints lists the agent's endpoints.
func (c *Client) Endpoints(ctx context.Context) ([]EndpointStatus, error) {
	var eps []EndpointStatus
	return eps, c.do(ctx, http.MethodGet, "/v1/endpoints", nil, &eps)
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, body)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("agent socket %s: %w", c.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("agent socket %s: %w", c.path, err)
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = string(bytes.TrimSpace(data))
		}
		return &Error{Status: resp.StatusCode, Message: e.Error}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("agent socket %s: decoding %s %s: %w", c.path, method, path, err)
	}
	return nil
}
