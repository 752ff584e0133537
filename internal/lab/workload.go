package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	v3 "github.com/calico-go/calico/api/v3"
	"github.com/calico-go/calico/internal/ipam"
	"github.com/calico-go/calico/internal/netns"
	"github.com/calico-go/calico/pkg/client"
)

// WorkloadSpec describes a workload to add.
type WorkloadSpec struct {
	Namespace, Name, Host string
	Labels                map[string]string
	// Ports the echo server listens on (default DefaultPort).
	Ports []int
}

// cniNetwork is the CNI network name, as a Kubernetes install of Calico
// names it.
const cniNetwork = "k8s-pod-network"

// AddWorkload attaches a workload with the calico CNI plugin and starts
// its echo server. On failure nothing of it is left.
func (l *Lab) AddWorkload(ctx context.Context, spec WorkloadSpec) error {
	start := time.Now()
	w, err := l.addWorkload(ctx, spec)
	if err != nil {
		return errors.Join(err, l.save())
	}
	if err := l.save(); err != nil {
		return err
	}
	l.out.done(start, "workload %s on %s at %s", w.ID(), w.Host, w.Addr)
	return nil
}

// addWorkload does AddWorkload's work without saving the state (up adds
// many concurrently and saves once).
func (l *Lab) addWorkload(ctx context.Context, spec WorkloadSpec) (_ Workload, retErr error) {
	if err := CheckWorkloadName(spec.Namespace, spec.Name); err != nil {
		return Workload{}, err
	}
	if len(spec.Ports) == 0 {
		spec.Ports = []int{DefaultPort}
	}
	id := ID(spec.Namespace, spec.Name)
	w := Workload{Namespace: spec.Namespace, Name: spec.Name, Host: spec.Host, Labels: spec.Labels, Ports: spec.Ports}
	l.mu.Lock()
	_, hostOK := l.state.host(spec.Host)
	_, dupErr := l.state.workload(id)
	if hostOK && dupErr != nil {
		w.ContainerID = newContainerID()
		l.state.Workloads = append(l.state.Workloads, w) // reserves the name
	}
	l.mu.Unlock()
	switch {
	case !hostOK:
		return w, fmt.Errorf("lab %q has no host %q: %w", l.state.Name, spec.Host, ErrInvalid)
	case dupErr == nil:
		return w, fmt.Errorf("lab %q already has a workload %s: %w", l.state.Name, id, ErrInvalid)
	}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(fmt.Errorf("workload %s: %w", id, retErr), l.removeWorkload(context.WithoutCancel(ctx), w))
		}
	}()
	c, err := l.client(ctx)
	if err != nil {
		return w, err
	}
	if err := ensureNamespaceProfile(ctx, c, spec.Namespace); err != nil {
		return w, err
	}
	sp, err := createSpace(workloadNS(l.state.Name, w.Namespace, w.Name))
	if err != nil {
		return w, err
	}
	defer sp.Close()
	out, err := l.cni(ctx, "ADD", w)
	if err != nil {
		return w, err
	}
	if w.Addr, err = resultAddr(out); err != nil {
		return w, err
	}
	ports := make([]string, len(w.Ports))
	for i, p := range w.Ports {
		ports[i] = strconv.Itoa(p)
	}
	d, err := startDaemon(daemonSpec{lab: l.state.Name, log: filepath.Join(l.st.workloadDir(id), "serve.log"), ns: sp.NS,
		argv: []string{l.env.Self, "serve", "--id", id, "--host", w.Host, "--ports", strings.Join(ports, ",")},
		env:  []string{"PATH=" + os.Getenv("PATH")}})
	if err != nil {
		return w, err
	}
	w.PID = d.pid
	if err := waitListening(ctx, sp, w.Ports[0], d); err != nil {
		return w, err
	}
	l.mu.Lock()
	if p, err := l.state.workload(id); err == nil {
		*p = w
	}
	l.mu.Unlock()
	return w, nil
}

// waitListening waits until the echo server listens on port, connecting
// over the workload's loopback.
func waitListening(ctx context.Context, sp *space, port int, d *daemon) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := sp.Do(func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		switch {
		case err == nil:
			return nil
		case d.exited():
			return fmt.Errorf("the echo server exited:\n%s", logTail(d.log, 10))
		case time.Now().After(deadline):
			return fmt.Errorf("the echo server does not listen on port %d: %w", port, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// DeleteWorkload detaches a workload (CNI DEL, which releases its address
// and deletes its WorkloadEndpoint), stops its server and removes its
// namespace.
func (l *Lab) DeleteWorkload(ctx context.Context, ref string) error {
	l.mu.Lock()
	wp, err := l.state.workload(ref)
	var w Workload
	if err == nil {
		w = *wp
	}
	l.mu.Unlock()
	if err != nil {
		return err
	}
	start := time.Now()
	err = errors.Join(l.removeWorkload(ctx, w), l.save())
	if err == nil {
		l.out.done(start, "workload %s deleted", w.ID())
	}
	return err
}

// removeWorkload undoes addWorkload as far as it got; it is idempotent.
func (l *Lab) removeWorkload(ctx context.Context, w Workload) error {
	var errs []error
	if w.PID > 0 && pidAlive(w.PID) {
		errs = append(errs, stopProcesses(ctx, []int{w.PID}, 5*time.Second))
	}
	name := workloadNS(l.state.Name, w.Namespace, w.Name)
	if _, err := os.Stat(filepath.Join(netns.Dir, hostNS(l.state.Name, w.Host))); err == nil && w.ContainerID != "" {
		if _, err := l.cni(ctx, "DEL", w); err != nil {
			errs = append(errs, err)
		}
	}
	errs = append(errs, netns.Remove(name), os.RemoveAll(l.st.workloadDir(w.ID())))
	l.mu.Lock()
	l.state.Workloads = slices.DeleteFunc(l.state.Workloads, func(x Workload) bool { return x.ID() == w.ID() })
	l.mu.Unlock()
	return errors.Join(errs...)
}

// cni runs the calico CNI plugin (with calico-ipam) for w inside its host's
// namespace, as a kubelet would: a Kubernetes identity in CNI_ARGS and the
// pod's labels through the CNI args convention.
func (l *Lab) cni(ctx context.Context, command string, w Workload) ([]byte, error) {
	hostNSName := hostNS(l.state.Name, w.Host)
	host, err := netns.Open(filepath.Join(netns.Dir, hostNSName))
	if err != nil {
		return nil, fmt.Errorf("CNI %s: host %s: %w", command, w.Host, err)
	}
	defer host.Close()
	conf, err := l.cniConf(w)
	if err != nil {
		return nil, err
	}
	env := append(l.baseEnv(true),
		"CNI_COMMAND="+command,
		"CNI_CONTAINERID="+w.ContainerID,
		"CNI_NETNS="+filepath.Join(netns.Dir, workloadNS(l.state.Name, w.Namespace, w.Name)),
		"CNI_IFNAME=eth0",
		"CNI_PATH="+l.state.BinDir,
		"CNI_ARGS=IgnoreUnknown=1;K8S_POD_NAMESPACE="+w.Namespace+";K8S_POD_NAME="+w.Name+";K8S_POD_INFRA_CONTAINER_ID="+w.ContainerID,
	)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	out, err := runIn(ctx, host, conf, env, l.bin("calico"))
	if err != nil {
		return nil, fmt.Errorf("CNI %s on %s: %w", command, w.Host, err)
	}
	return out, nil
}

// cniConf is the network configuration a Kubernetes node would have, with
// the lab's paths, plus the workload's labels.
func (l *Lab) cniConf(w Workload) ([]byte, error) {
	mtu := 0
	if b, err := os.ReadFile(l.mtuFile(w.Host)); err == nil {
		mtu, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	if mtu == 0 {
		mtu = 1500
	}
	conf := map[string]any{
		"cniVersion":     "1.0.0",
		"name":           cniNetwork,
		"type":           "calico",
		"datastore_type": "etcdv3",
		"etcd_endpoints": strings.Join(l.state.HostEndpoints, ","),
		"nodename_file":  l.nodenameFile(w.Host),
		"ipam_lock_file": filepath.Join(l.st.hostDir(w.Host), "ipam.lock"),
		"mtu":            mtu,
		"ipam":           map[string]any{"type": "calico-ipam"},
	}
	if len(w.Labels) > 0 {
		conf["args"] = map[string]any{"cni": map[string]any{"labels": w.Labels}}
	}
	return json.Marshal(conf)
}

// resultAddr is the first IPv4 address of a CNI result.
func resultAddr(out []byte) (netip.Addr, error) {
	var res struct {
		IPs []struct {
			Address string `json:"address"`
		} `json:"ips"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return netip.Addr{}, fmt.Errorf("CNI result %q: %w", out, err)
	}
	for _, ip := range res.IPs {
		if p, err := netip.ParsePrefix(ip.Address); err == nil && p.Addr().Is4() {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("CNI result %q has no IPv4 address", out)
}

func newContainerID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ensureNamespaceProfile creates the kns.<namespace> Profile that Calico's
// Kubernetes controllers keep for every namespace: allow everything (the
// Kubernetes default when no policy selects a pod), and the namespace's
// name as a label for namespaceSelectors.
func ensureNamespaceProfile(ctx context.Context, c *client.Client, ns string) error {
	p := v3.NewProfile()
	p.Name = v3.ProfilePrefixNamespace + ns
	p.Spec.Ingress = []v3.Rule{{Action: v3.Allow}}
	p.Spec.Egress = []v3.Rule{{Action: v3.Allow}}
	p.Spec.LabelsToApply = map[string]string{v3.NamespaceLabelPrefix + v3.LabelName: ns}
	if _, err := c.Create(ctx, p); err != nil && !errors.Is(err, client.ErrAlreadyExists) {
		return fmt.Errorf("create profile %s: %w", p.Name, err)
	}
	return nil
}

type etcdBackend interface{ Client() *clientv3.Client }

// forgetNode deletes a host's Node resource and releases its IPAM block
// affinities, as `calicoctl delete node` does for a decommissioned node.
func forgetNode(ctx context.Context, c *client.Client, name string) error {
	if _, err := c.Delete(ctx, client.Key{Kind: v3.KindNode, Name: name}, ""); err != nil && !errors.Is(err, client.ErrNotFound) {
		return fmt.Errorf("delete node %s: %w", name, err)
	}
	be, ok := c.Backend().(etcdBackend)
	if !ok {
		return nil
	}
	a, err := ipam.New(ipam.Options{Store: ipam.NewEtcdStore(be.Client(), 0), Resources: ipam.ClientResources(c)})
	if err != nil {
		return err
	}
	if err := a.ReleaseHostAffinities(ctx, name); err != nil {
		return fmt.Errorf("release IPAM affinities of %s: %w", name, err)
	}
	return nil
}
