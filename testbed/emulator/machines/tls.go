package machines

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

// certEntry caches a server certificate; key says what it was issued for.
type certEntry struct {
	key  string
	cert tls.Certificate
	pool *x509.CertPool
}

// errNoIssuer: a worker's config carries only the OS CA certificate. Real workers get their
// API certificate from trustd on a control plane; the emulator signs it with the key of a
// control-plane config applied to this emulator whose machine.ca certificate matches. Until
// one exists the worker's API does not listen (as real apid waits for trustd): clients get
// "connection refused".
var errNoIssuer = errors.New("no control plane configured in this emulator holds the OS CA key to issue this node's certificate")

// ServerTLSConfig returns the TLS config for a new connection to n. It is consulted for every
// handshake (tls.Config.GetConfigForClient), so the listener never restarts when the node
// leaves maintenance mode.
func (em *Emulator) ServerTLSConfig(n *Node) (*tls.Config, error) {
	em.mu.Lock()
	defer em.mu.Unlock()

	if !n.configured() {
		// maintenance mode: self-signed certificate, client certificates not requested
		if n.maintenanceCert == nil {
			cert, err := selfSignedCert(n)
			if err != nil {
				return nil, err
			}

			n.maintenanceCert = &certEntry{cert: cert}
		}

		return &tls.Config{
			Certificates: []tls.Certificate{n.maintenanceCert.cert},
			ClientAuth:   tls.NoClientCert,
			NextProtos:   []string{"h2"},
			MinVersion:   tls.VersionTLS12,
		}, nil
	}

	entry, err := em.serverCert(n)
	if err != nil {
		em.log("%s: refusing TLS handshake: %v", n.spec.Name, err)

		return nil, err
	}

	return &tls.Config{
		Certificates:          []tls.Certificate{entry.cert},
		ClientAuth:            tls.RequireAndVerifyClientCert,
		ClientCAs:             entry.pool,
		VerifyPeerCertificate: requireClientAuthUsage,
		NextProtos:            []string{"h2"},
		MinVersion:            tls.VersionTLS12,
	}, nil
}

// requireClientAuthUsage: like apid, the client's leaf certificate must carry exactly the
// client-auth extended key usage.
func requireClientAuthUsage(_ [][]byte, chains [][]*x509.Certificate) error {
	if len(chains) == 0 {
		return errors.New("no verified chains")
	}

	for _, cert := range chains[0] {
		if !cert.IsCA && !slices.Equal(cert.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
			return fmt.Errorf("certificate %q is missing the client auth extended key usage", cert.Subject)
		}
	}

	return nil
}

// trust is the OS CA of a configured node: the issuing CA and the accepted CAs.
type trust struct {
	issuing  *x509.Certificate
	accepted []*x509.Certificate
}

func (t trust) pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(t.issuing)

	for _, c := range t.accepted {
		pool.AddCert(c)
	}

	return pool
}

// trusts reports whether certificates issued by other's CA verify against t.
func (t trust) trusts(other trust) bool {
	if other.issuing == nil || t.issuing == nil {
		return false
	}

	return slices.ContainsFunc(append([]*x509.Certificate{t.issuing}, t.accepted...), func(c *x509.Certificate) bool {
		return bytes.Equal(c.Raw, other.issuing.Raw)
	})
}

func (n *Node) trust() (trust, error) {
	security := n.running.Machine().Security()

	ca := security.IssuingCA()
	if ca == nil || len(ca.Crt) == 0 {
		return trust{}, errors.New("machine.ca.crt is missing")
	}

	issuing, err := parseCert(ca.Crt)
	if err != nil {
		return trust{}, fmt.Errorf("machine.ca.crt: %w", err)
	}

	t := trust{issuing: issuing}

	for _, accepted := range security.AcceptedCAs() {
		c, err := parseCert(accepted.Crt)
		if err != nil {
			return trust{}, fmt.Errorf("machine.acceptedCAs: %w", err)
		}

		t.accepted = append(t.accepted, c)
	}

	return t, nil
}

// issuerKey finds the OS CA key for n: its own machine.ca.key, else that of a configured
// control plane whose machine.ca.crt is the same certificate.
func (em *Emulator) issuerKey(n *Node, issuing *x509.Certificate) (crypto.Signer, error) {
	candidates := []*Node{n}

	for _, other := range em.nodes {
		if other != n && other.isControlPlane() {
			candidates = append(candidates, other)
		}
	}

	for _, c := range candidates {
		if !c.configured() {
			continue
		}

		ca := c.running.Machine().Security().IssuingCA()
		if ca == nil || len(ca.Key) == 0 {
			continue
		}

		cert, err := parseCert(ca.Crt)
		if err != nil || !bytes.Equal(cert.Raw, issuing.Raw) {
			continue
		}

		key, err := ca.GetKey()
		if err != nil {
			return nil, fmt.Errorf("%s: machine.ca.key: %w", c.spec.Name, err)
		}

		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("%s: machine.ca.key is not a signing key", c.spec.Name)
		}

		return signer, nil
	}

	return nil, errNoIssuer
}

// serverSANs: the node address, 127.0.0.1, the hostname and machine.certSANs.
func (n *Node) serverSANs() (ips []net.IP, dns []string) {
	ips = []net.IP{net.ParseIP(n.spec.Address), net.ParseIP("127.0.0.1")}
	dns = []string{n.hostname()}

	for _, san := range n.running.Machine().Security().CertSANs() {
		if ip := net.ParseIP(san); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, san)
		}
	}

	return ips, dns
}

// serverCert returns (issuing when needed) the node's API server certificate.
func (em *Emulator) serverCert(n *Node) (*certEntry, error) {
	t, err := n.trust()
	if err != nil {
		return nil, err
	}

	ips, dns := n.serverSANs()

	h := sha256.New()
	h.Write(t.issuing.Raw)

	for _, c := range t.accepted {
		h.Write(c.Raw)
	}

	for _, ip := range ips {
		h.Write([]byte(ip.String() + "\x00"))
	}

	h.Write([]byte(strings.Join(dns, "\x00")))
	key := hex.EncodeToString(h.Sum(nil))

	if n.serverCert != nil && n.serverCert.key == key {
		return n.serverCert, nil
	}

	signer, err := em.issuerKey(n, t.issuing)
	if err != nil {
		return nil, err
	}

	cert, err := issueCert(t.issuing, signer, n.hostname(), ips, dns)
	if err != nil {
		return nil, err
	}

	n.serverCert = &certEntry{key: key, cert: cert, pool: t.pool()}

	return n.serverCert, nil
}

// canServe reports whether the node's API can come up: in maintenance mode always, once
// configured only with a server certificate.
func (em *Emulator) canServe(n *Node) bool {
	if n.off {
		return false
	}

	if !n.configured() {
		return true
	}

	_, err := em.serverCert(n)

	return err == nil
}

// leafRequest describes a certificate to issue.
type leafRequest struct {
	subject pkix.Name
	ips     []net.IP
	dns     []string
	usages  []x509.ExtKeyUsage
}

// issue signs a new ECDSA key's certificate with parent/signer; parent nil = self-signed.
func (r leafRequest) issue(parent *x509.Certificate, signer crypto.Signer) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}

	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}

	now := time.Now()
	template := &x509.Certificate{
		SerialNumber: serial,
		Subject:      r.subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  r.usages,
		IPAddresses:  r.ips,
		DNSNames:     r.dns,
	}

	if parent == nil {
		parent, signer = template, key
	}

	der, err := x509.CreateCertificate(rand.Reader, template, parent, &key.PublicKey, signer)
	if err != nil {
		return tls.Certificate{}, err
	}

	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func issueCert(parent *x509.Certificate, signer crypto.Signer, cn string, ips []net.IP, dns []string) (tls.Certificate, error) {
	return leafRequest{subject: pkix.Name{CommonName: cn}, ips: ips, dns: dns, usages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}.issue(parent, signer)
}

func selfSignedCert(n *Node) (tls.Certificate, error) {
	return issueCert(nil, nil, n.spec.Name, []net.IP{net.ParseIP(n.spec.Address)}, []string{n.spec.Name})
}

func parseCert(pemBytes []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("no PEM certificate")
	}

	return x509.ParseCertificate(block.Bytes)
}
