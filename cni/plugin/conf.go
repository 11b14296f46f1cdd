package plugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/strait-net/strait/agent/endpointapi"
)

// Defaults of the optional network config fields.
const (
	DefaultAgentSocket = endpointapi.DefaultSocket
	DefaultIPAMDataDir = "/var/lib/strait/ipam"
	// DefaultNamespace is the pod namespace when CNI_ARGS names none.
	DefaultNamespace = "default"
	maxConf          = 1 << 20
)

// Label is one pod label of args.cni.labels (CNI conventions).
type Label struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// NetConf is the network configuration the runtime passes on stdin.
type NetConf struct {
	types.PluginConf
	// AgentSocket is the agent's endpoint API socket.
	AgentSocket string `json:"agentSocket,omitempty"`
	// IPAMDataDir holds the address allocations, one directory per network.
	IPAMDataDir string `json:"ipamDataDir,omitempty"`
	// Args are the runtime's args; only args.cni.labels is read.
	Args map[string]json.RawMessage `json:"args,omitempty"`
	// RuntimeConfig is accepted (runtimes inject it) and ignored.
	RuntimeConfig json.RawMessage `json:"runtimeConfig,omitempty"`
	// LegacyAttachments is the pre-1.1 spelling of
	// cni.dev/valid-attachments that libcni still sends with GC; ignored.
	LegacyAttachments json.RawMessage `json:"cni.dev/attachments,omitempty"`

	// Labels is args.cni.labels as a map.
	Labels map[string]string `json:"-"`
}

// ParseNetConf decodes and validates the network config. Errors are
// *types.Error: code 6 (undecodable JSON), 2 (unknown field, named), 7
// (a field of the wrong type or with a bad value, named).
func ParseNetConf(data []byte) (*NetConf, error) {
	if len(data) > maxConf {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("netconf: %d bytes, at most %d", len(data), maxConf), "")
	}
	var c NetConf
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, jsonError("netconf", err)
	}
	if dec.More() {
		return nil, types.NewError(types.ErrDecodingFailure, "netconf: trailing data after the JSON object", "")
	}
	if c.Name == "" {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, `netconf field "name": missing`, "")
	}
	if c.AgentSocket == "" {
		c.AgentSocket = DefaultAgentSocket
	}
	if c.IPAMDataDir == "" {
		c.IPAMDataDir = DefaultIPAMDataDir
	}
	if !filepath.IsAbs(c.AgentSocket) {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("netconf field %q: %q is not an absolute path", "agentSocket", c.AgentSocket), "")
	}
	if !filepath.IsAbs(c.IPAMDataDir) {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("netconf field %q: %q is not an absolute path", "ipamDataDir", c.IPAMDataDir), "")
	}
	if c.IPAM.Type != "" {
		return nil, types.NewError(types.ErrUnsupportedField, fmt.Sprintf("netconf field %q: %q: strait-cni does its own address management; remove the field", "ipam", c.IPAM.Type), "")
	}
	labels, err := parseLabels(c.Args)
	if err != nil {
		return nil, err
	}
	c.Labels = labels
	return &c, nil
}

func parseLabels(args map[string]json.RawMessage) (map[string]string, error) {
	raw, ok := args["cni"]
	if !ok {
		return nil, nil
	}
	var cni map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cni); err != nil {
		return nil, jsonError("netconf args.cni", err)
	}
	raw, ok = cni["labels"]
	if !ok {
		return nil, nil
	}
	var list []Label
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&list); err != nil {
		return nil, jsonError("netconf args.cni.labels", err)
	}
	out := make(map[string]string, len(list))
	for i, l := range list {
		if l.Key == "" {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("netconf field \"args.cni.labels[%d].key\": empty", i), "")
		}
		if _, dup := out[l.Key]; dup {
			return nil, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("netconf field \"args.cni.labels[%d].key\": %q given twice", i, l.Key), "")
		}
		out[l.Key] = l.Value
	}
	return out, nil
}

// jsonError turns a decoding error into a CNI error naming the field.
func jsonError(what string, err error) *types.Error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := strings.TrimPrefix(te.Field, "PluginConf.")
		if field == "" {
			field = "(top level)"
		}
		return types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("%s field %q: JSON %s where %s is expected", what, field, te.Value, te.Type), "")
	case errors.As(err, &se):
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("%s: invalid JSON at byte %d: %v", what, se.Offset, err), "")
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("%s: invalid JSON: unexpected end of input", what), "")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.TrimPrefix(err.Error(), "json: unknown field ")
		return types.NewError(types.ErrUnsupportedField, fmt.Sprintf("%s field %s: unknown field", what, name), "")
	default:
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("%s: %v", what, err), "")
	}
}

// PodArgs are the CNI_ARGS strait-cni reads.
type PodArgs struct {
	types.CommonArgs
	K8S_POD_NAMESPACE          types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_NAME               types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_INFRA_CONTAINER_ID types.UnmarshallableString //nolint:revive // CNI_ARGS key
	K8S_POD_UID                types.UnmarshallableString //nolint:revive // CNI_ARGS key
}

// ParseArgs decodes CNI_ARGS ("K=V;K2=V2"); unknown keys are an error
// unless IgnoreUnknown=1 is among them. Errors are *types.Error code 4.
func ParseArgs(s string) (*PodArgs, error) {
	var a PodArgs
	if err := types.LoadArgs(s, &a); err != nil {
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_ARGS: %v", err), "")
	}
	if a.K8S_POD_NAMESPACE == "" {
		a.K8S_POD_NAMESPACE = DefaultNamespace
	}
	return &a, nil
}
