package dataplane

import (
	"crypto/sha256"
	"encoding/base64"
	"strings"

	"github.com/calico-go/calico/internal/dpapi"
	"github.com/calico-go/calico/internal/kernel/nft"
)

// maxChainName is Calico's chain name limit (SPEC §8).
const maxChainName = 28

// chainName joins a prefix and a suffix; when the result is longer than
// 28 characters the suffix becomes "_" + base64url(SHA-256(suffix)), cut
// to fit, as Calico does.
func chainName(prefix, suffix string) string {
	if len(prefix)+len(suffix) <= maxChainName {
		return prefix + suffix
	}
	sum := sha256.Sum256([]byte(suffix))
	h := base64.RawURLEncoding.EncodeToString(sum[:])
	return prefix + "_" + h[:maxChainName-len(prefix)-1]
}

// Fixed chain names. Base chains carry the names Calico's nftables mode
// uses for its hooks; the rest keep the iptables names of SPEC §8.
const (
	chainRawPrerouting    = "raw-PREROUTING"
	chainRawOutput        = "raw-OUTPUT"
	chainManglePrerouting = "mangle-PREROUTING"
	chainFilterInput      = "filter-INPUT"
	chainFilterForward    = "filter-FORWARD"
	chainFilterOutput     = "filter-OUTPUT"

	chainWlToHost       = "cali-wl-to-host"
	chainFromWlDispatch = "cali-from-wl-dispatch"
	chainToWlDispatch   = "cali-to-wl-dispatch"
	chainFailsafeIn     = "cali-failsafe-in"
	chainFailsafeOut    = "cali-failsafe-out"

	chainFromHEPDispatch    = "cali-from-host-endpoint"
	chainToHEPDispatch      = "cali-to-host-endpoint"
	chainFromHEPFwdDispatch = "cali-from-hep-forward"
	chainToHEPFwdDispatch   = "cali-to-hep-forward"
	chainFromHEPPreDNAT     = "cali-from-hep-prednat"

	// Verdict maps from interface name to endpoint chain.
	mapFromWl        = "cali-from-wl-map"
	mapToWl          = "cali-to-wl-map"
	mapFromHEP       = "cali-from-hep-map"
	mapToHEP         = "cali-to-hep-map"
	mapFromHEPFwd    = "cali-from-hep-fwd-map"
	mapToHEPFwd      = "cali-to-hep-fwd-map"
	mapFromHEPUntrkd = "cali-from-hep-untracked-map"
	mapToHEPUntrkd   = "cali-to-hep-untracked-map"
	mapFromHEPPreDNT = "cali-from-hep-prednat-map"
)

// Endpoint chain prefixes (SPEC §8), plus fhu/thu for the untracked and
// fhp for the preDNAT stage, which iptables keeps in other tables.
const (
	prefixToWl       = "cali-tw-"
	prefixFromWl     = "cali-fw-"
	prefixToHost     = "cali-th-"
	prefixFromHost   = "cali-fh-"
	prefixToHostFwd  = "cali-thfw-"
	prefixFromHstFwd = "cali-fhfw-"
	prefixToHostU    = "cali-thu-"
	prefixFromHostU  = "cali-fhu-"
	prefixFromHostP  = "cali-fhp-"

	prefixPolicyIn   = "cali-pi-"
	prefixPolicyOut  = "cali-po-"
	prefixProfileIn  = "cali-pri-"
	prefixProfileOut = "cali-pro-"
)

// allInterfaces stands for the interface of a "*" host endpoint in chain
// names ("all" cannot name a Linux interface: it clashes with the
// per-interface sysctls).
const allInterfaces = "all"

func policyChain(id dpapi.PolicyID, ingress bool) string {
	if ingress {
		return chainName(prefixPolicyIn, id.String())
	}
	return chainName(prefixPolicyOut, id.String())
}

func profileChain(id dpapi.ProfileID, ingress bool) string {
	if ingress {
		return chainName(prefixProfileIn, id.Name)
	}
	return chainName(prefixProfileOut, id.Name)
}

// ipSetName is the kernel name of one family's half of an IP set:
// "cali4" or "cali6", "0", then the ID with its ':' turned into '.', which
// the nft tool accepts in names (IDs never contain '.').
func ipSetName(id string, f nft.Family) string {
	v := "cali4"
	if f == nft.IPv6 {
		v = "cali6"
	}
	return v + "0" + strings.ReplaceAll(id, ":", ".")
}

// expandLogPrefix expands %t (tier), %k (kind), %n (name) and %p
// (namespace/name, or the name when global) in a Log prefix.
func expandLogPrefix(prefix, tier, kind, name, namespace string) string {
	full := name
	if namespace != "" {
		full = namespace + "/" + name
	}
	r := strings.NewReplacer("%t", tier, "%k", kind, "%n", name, "%p", full)
	return r.Replace(prefix)
}
