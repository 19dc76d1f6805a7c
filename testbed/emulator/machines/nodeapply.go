package machines

// The kubelet's identity and Talos' NodeApplyController. A real kubelet talks to the API server
// as system:node:<name> (O=system:nodes), so the API server's Node authorizer and NodeRestriction
// admission decide what it may write: it creates its own Node with the labels it sets on itself
// and its registerWithTaints, and may never change taints afterwards nor set labels in the
// kubernetes.io / k8s.io namespaces outside the kubelet's own. Talos' NodeApplyController
// (internal/app/machined/pkg/controllers/k8s/node_apply.go) then writes machine.nodeLabels,
// nodeAnnotations and nodeTaints in one Update of the whole Node: with admin credentials on a
// control plane, with the kubelet's identity on a worker (getK8sClient), so on a worker the API
// server refuses the whole update when it changes a taint or sets a restricted label.

import (
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"

	"github.com/siderolabs/talos/pkg/machinery/constants"

	"solanaops.testbed/emulator/kubelet"
)

// kubeletClient is the node's kubelet credential: a client certificate for
// system:node:<node name> in system:nodes, issued from the cluster's Kubernetes CA (the key a
// control plane's config holds; a real worker gets its certificate through the bootstrap token
// and a CSR Talos approves, with the same subject). Reissued when the name or the CA changes.
func (em *Emulator) kubeletClient(n *Node, issuer *Node) (*http.Client, error) {
	caPEM, err := os.ReadFile(issuer.rt.pki.path("ca.crt"))
	if err != nil {
		return nil, err
	}

	keyPEM, err := os.ReadFile(issuer.rt.pki.path("ca.key"))
	if err != nil {
		return nil, err
	}

	name := n.nodeName()
	sum := sha256.Sum256(append(append([]byte(name), 0), caPEM...))
	key := hex.EncodeToString(sum[:])

	if n.rt.kubelet != nil && n.rt.kubeletKey == key {
		return n.rt.kubelet, nil
	}

	caCert, signer, err := caOf(caPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster.ca: %w", err)
	}

	cert, err := leafRequest{
		subject: pkix.Name{CommonName: "system:node:" + name, Organization: []string{"system:nodes"}},
		usages:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}.issue(caCert, signer)
	if err != nil {
		return nil, err
	}

	n.rt.kubelet, n.rt.kubeletKey = httpsClient(caPEM, cert), key

	return n.rt.kubelet, nil
}

// nodeSpec is what Talos' NodeApplyController wants on the machine's Node.
type nodeSpec struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Taints      []kubelet.Taint   `json:"taints"`
}

func (s nodeSpec) hash() string {
	raw, _ := json.Marshal(s)
	sum := sha256.Sum256(raw)

	return hex.EncodeToString(sum[:])
}

// applyNodeSpec is one NodeApplyController pass: read the Node, apply the ownership rules,
// write it back with the client the machine type decides. A refusal is logged (once per
// distinct error, as machined logs the controller's failure) and retried on the next pass; the
// Node keeps what it had.
func (em *Emulator) applyNodeSpec(n *Node, server string, client *http.Client, want nodeSpec) {
	hash := want.hash()
	if n.rt.applied == hash {
		return
	}

	err := applyOnce(client, server+"/api/v1/nodes/"+n.nodeName(), want)
	if err == nil {
		n.rt.applied, n.rt.applyErr = hash, ""
		em.log("%s: NodeApplyController: labels, annotations and taints applied to Node %s", n.spec.Name, n.nodeName())

		return
	}

	if err.Error() != n.rt.applyErr {
		n.rt.applyErr = err.Error()
		em.log("%s: NodeApplyController: %v", n.spec.Name, err)
	}
}

func applyOnce(client *http.Client, url string, want nodeSpec) error {
	status, body, err := kubeRequest(client, http.MethodGet, url, "", nil)
	if err != nil {
		return fmt.Errorf("error getting node: %w", err)
	}

	if status >= 300 {
		return fmt.Errorf("error getting node: %d: %s", status, body)
	}

	var node map[string]any
	if err = json.Unmarshal([]byte(body), &node); err != nil {
		return err
	}

	meta := node["metadata"].(map[string]any)
	labels, annotations := stringMap(meta["labels"]), stringMap(meta["annotations"])

	ownedLabels := owned(annotations, constants.AnnotationOwnedLabels)
	ownedAnnotations := owned(annotations, constants.AnnotationOwnedAnnotations)
	ownedTaints := owned(annotations, constants.AnnotationOwnedTaints)

	applyKV(labels, ownedLabels, want.Labels)
	applyKV(annotations, ownedAnnotations, want.Annotations)

	spec, _ := node["spec"].(map[string]any)
	if spec == nil {
		spec = map[string]any{}
		node["spec"] = spec
	}

	spec["taints"] = applyTaints(taintsOf(spec["taints"]), ownedTaints, want.Taints)

	for key, set := range map[string]map[string]bool{
		constants.AnnotationOwnedLabels: ownedLabels, constants.AnnotationOwnedAnnotations: ownedAnnotations,
		constants.AnnotationOwnedTaints: ownedTaints,
	} {
		if len(set) == 0 {
			delete(annotations, key)

			continue
		}

		list, _ := json.Marshal(slices.Sorted(maps.Keys(set)))
		annotations[key] = string(list)
	}

	meta["labels"], meta["annotations"] = labels, annotations

	raw, err := json.Marshal(node)
	if err != nil {
		return err
	}

	if status, body, err = kubeRequest(client, http.MethodPut, url, "application/json", raw); err != nil {
		return err
	} else if status >= 300 {
		return fmt.Errorf("%d: %s", status, body)
	}

	return nil
}

// applyKV is Talos' rule for labels and annotations: a key not on the Node is taken over; one
// with the wanted value is kept and counted as owned; one with another value is changed only if
// Talos owns it; owned keys no longer wanted are removed.
func applyKV(current map[string]string, owned map[string]bool, want map[string]string) {
	for key, value := range want {
		existing, exists := current[key]

		switch {
		case !exists, existing == value:
			current[key], owned[key] = value, true
		case owned[key]:
			current[key] = value
		}
	}

	for key := range owned {
		if _, wanted := want[key]; !wanted {
			delete(current, key)
			delete(owned, key)
		}
	}
}

// applyTaints is the same rule for taints, keyed by taint key.
func applyTaints(current []kubelet.Taint, owned map[string]bool, want []kubelet.Taint) []kubelet.Taint {
	for _, taint := range want {
		i := slices.IndexFunc(current, func(t kubelet.Taint) bool { return t.Key == taint.Key })

		switch {
		case i < 0:
			current = append(current, taint)
			owned[taint.Key] = true
		case owned[taint.Key]:
			current[i].Value, current[i].Effect = taint.Value, taint.Effect
		case current[i].Value == taint.Value && current[i].Effect == taint.Effect:
			owned[taint.Key] = true
		}
	}

	return slices.DeleteFunc(current, func(t kubelet.Taint) bool {
		if !owned[t.Key] || slices.ContainsFunc(want, func(w kubelet.Taint) bool { return w.Key == t.Key }) {
			return false
		}

		delete(owned, t.Key)

		return true
	})
}

func owned(annotations map[string]string, key string) map[string]bool {
	var keys []string

	_ = json.Unmarshal([]byte(annotations[key]), &keys) //nolint:errcheck // absent or foreign: nothing owned

	set := map[string]bool{}
	for _, k := range keys {
		set[k] = true
	}

	return set
}

func stringMap(v any) map[string]string {
	out := map[string]string{}

	if m, ok := v.(map[string]any); ok {
		for k, val := range m {
			out[k], _ = val.(string)
		}
	}

	return out
}

func taintsOf(v any) []kubelet.Taint {
	var taints []kubelet.Taint

	raw, _ := json.Marshal(v)
	_ = json.Unmarshal(raw, &taints) //nolint:errcheck // no taints

	return taints
}
