package apiserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/strait-net/strait/clustermesh/certs"
	"github.com/strait-net/strait/clustermesh/schema"
)

// Role names. "root" is etcd's built-in superuser role.
const (
	RootRole   = "root"
	LocalRole  = "local"
	RemoteRole = "remote"
)

// User is an etcd user and the one role granted to it.
type User struct {
	Name string
	Role string
}

// Perm is a read-only grant on [Key, RangeEnd); RangeEnd "" is the single
// key Key.
type Perm struct {
	Key, RangeEnd string
}

// Role is a role with exactly these read-only permissions.
type Role struct {
	Name  string
	Perms []Perm
}

// Users of cluster's etcd: root and admin-<cluster> hold the root role,
// local-<cluster> the local role, remote the remote role.
func Users(cluster string) []User {
	return []User{
		{Name: certs.RootUser, Role: RootRole},
		{Name: certs.AdminUser(cluster), Role: RootRole},
		{Name: certs.LocalUser(cluster), Role: LocalRole},
		{Name: certs.RemoteUser, Role: RemoteRole},
	}
}

// Roles of cluster's etcd, as Cilium's clustermesh-apiserver defines them:
//
//	local:  cilium/.heartbeat*, cilium/cache/, cilium/cluster-config/, cilium/synced/
//	remote: cilium/.heartbeat*, cilium/state/, cilium/cluster-config/<cluster>
//	        (that key only), cilium/synced/<cluster>/
//
// All read-only.
func Roles(cluster string) []Role {
	return []Role{
		{Name: LocalRole, Perms: []Perm{
			prefix(schema.HeartbeatKey),
			prefix(schema.CachePrefix),
			prefix(schema.ClusterConfigPrefix),
			prefix(schema.SyncedPrefix),
		}},
		{Name: RemoteRole, Perms: []Perm{
			prefix(schema.HeartbeatKey),
			prefix(schema.StatePrefix),
			{Key: schema.ClusterConfigKey(cluster)},
			prefix(schema.SyncedPrefix + cluster + "/"),
		}},
	}
}

func prefix(p string) Perm {
	return Perm{Key: p, RangeEnd: clientv3.GetPrefixRangeEnd(p)}
}

// SetupAuth idempotently creates Users and Roles of cluster through cli,
// revokes permissions of those roles that Roles does not list, and enables
// authentication. cli must be allowed to manage users: any client while
// auth is off, a root-role user once it is on.
func SetupAuth(ctx context.Context, log *slog.Logger, cli *clientv3.Client, cluster string) error {
	// Look before adding, so a restart does not make etcd log a warning for
	// every existing user and role; the AlreadyExist errors still count as
	// success in case another apiserver adds them concurrently.
	roles, err := cli.RoleList(ctx)
	if err != nil {
		return fmt.Errorf("list roles: %w", err)
	}
	for _, r := range Roles(cluster) {
		if err := setupRole(ctx, log, cli, r, slices.Contains(roles.Roles, r.Name)); err != nil {
			return err
		}
	}
	users, err := cli.UserList(ctx)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	for _, u := range Users(cluster) {
		if err := setupUser(ctx, log, cli, u, slices.Contains(users.Users, u.Name)); err != nil {
			return err
		}
	}
	// Enabling auth twice is a no-op; root must exist, which it does now.
	if _, err := cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("enable auth: %w", err)
	}
	return nil
}

func setupUser(ctx context.Context, log *slog.Logger, cli *clientv3.Client, u User, exists bool) error {
	if !exists {
		_, err := cli.UserAddWithOptions(ctx, u.Name, "", &clientv3.UserAddOptions{NoPassword: true})
		switch {
		case err == nil:
			log.Info("etcd user created", logUser, u.Name)
		case errors.Is(err, rpctypes.ErrUserAlreadyExist):
		default:
			return fmt.Errorf("add user %s: %w", u.Name, err)
		}
	}
	got, err := cli.UserGet(ctx, u.Name)
	if err != nil {
		return fmt.Errorf("get user %s: %w", u.Name, err)
	}
	if slices.Contains(got.Roles, u.Role) {
		return nil
	}
	if _, err := cli.UserGrantRole(ctx, u.Name, u.Role); err != nil {
		return fmt.Errorf("grant role %s to user %s: %w", u.Role, u.Name, err)
	}
	return nil
}

func setupRole(ctx context.Context, log *slog.Logger, cli *clientv3.Client, r Role, exists bool) error {
	if !exists {
		_, err := cli.RoleAdd(ctx, r.Name)
		switch {
		case err == nil:
			log.Info("etcd role created", logRole, r.Name)
		case errors.Is(err, rpctypes.ErrRoleAlreadyExist):
		default:
			return fmt.Errorf("add role %s: %w", r.Name, err)
		}
	}
	got, err := cli.RoleGet(ctx, r.Name)
	if err != nil {
		return fmt.Errorf("get role %s: %w", r.Name, err)
	}
	var have []Perm
	for _, p := range got.Perm {
		perm := Perm{Key: string(p.Key), RangeEnd: string(p.RangeEnd)}
		if slices.Contains(r.Perms, perm) && p.PermType == clientv3.PermRead {
			have = append(have, perm)
			continue
		}
		if _, err := cli.RoleRevokePermission(ctx, r.Name, perm.Key, perm.RangeEnd); err != nil {
			return fmt.Errorf("revoke [%q, %q) from role %s: %w", perm.Key, perm.RangeEnd, r.Name, err)
		}
		log.Warn("unexpected etcd permission revoked", logRole, r.Name, logKey, perm.Key, logRangeEnd, perm.RangeEnd)
	}
	for _, p := range r.Perms {
		if slices.Contains(have, p) {
			continue
		}
		if _, err := cli.RoleGrantPermission(ctx, r.Name, p.Key, p.RangeEnd, clientv3.PermissionType(clientv3.PermRead)); err != nil {
			return fmt.Errorf("grant read [%q, %q) to role %s: %w", p.Key, p.RangeEnd, r.Name, err)
		}
	}
	return nil
}
