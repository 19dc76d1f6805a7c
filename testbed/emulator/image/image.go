// Package image is the installer "pull" an emulated machine makes when it leaves maintenance
// mode: it resolves machine.install.image to the installer's content, the part of it the
// emulated machine can observe (the schematic's kernel arguments, official extensions and
// SecureBoot flavour). Only two kinds of reference resolve:
//
//   - an Image Factory installer, <host[:port]>/<flavour>/<schematic id>:<tag>, whose host is
//     a loopback address: the testbed's Image Factory (testbed/imagefactory) is asked over
//     plain HTTP, GET http://<host:port>/v2/<flavour>/<id>/manifests/<tag>, and answers the
//     schematic's customization as JSON (plain HTTP: real Talos would want https or an http://
//     mirror in machine.registries, which the emulator does not check);
//   - the stock installer, ghcr.io/siderolabs/installer:<tag>, known without a pull: no
//     schematic customization at all.
//
// Anything else (factory.talos.dev, another registry, a digest) cannot be pulled here and
// fails, as would a pull on a machine without network. The tag must be a release the emulator
// can boot (release.Bootable); the stock installer exists for v1.13 only
// (release.StockInstallerPublished).
package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"solanaops.testbed/emulator/release"
)

// StockRepository is the stock installer's repository.
const StockRepository = "ghcr.io/siderolabs/installer"

// The Image Factory's metal installer flavours.
const (
	FlavourMetal           = "metal-installer"
	FlavourMetalSecureBoot = "metal-installer-secureboot"
)

// Installer is what an installed machine keeps of its installer image (node.json "install").
type Installer struct {
	// Image is the reference machine.install.image named.
	Image string `json:"image"`
	// Schematic is the Image Factory schematic ID; empty for the stock installer.
	Schematic string `json:"schematic"`
	// ExtraKernelArgs are the schematic's customization.extraKernelArgs.
	ExtraKernelArgs []string `json:"extra_kernel_args"`
	// OfficialExtensions are the schematic's customization.systemExtensions.officialExtensions.
	OfficialExtensions []string `json:"official_extensions"`
	// SecureBoot: the metal-installer-secureboot flavour.
	SecureBoot bool `json:"secureboot"`
	// TalosVersion is the installer's Talos release (its tag).
	TalosVersion string `json:"talos_version"`
	// Digest is the image's manifest digest (sha256:<hex> of the factory's answer; of the
	// reference for the stock installer, which is not pulled): a pull's pinned name uses it.
	Digest string `json:"digest,omitempty"`
}

// PinnedName is the name containerd reports for a pulled image: the repository pinned to the
// manifest digest (internal/app/images/images.go Pull: a reference that is not canonical is
// pinned, parsedRef.Name() + "@" + digest).
func (i Installer) PinnedName() (string, error) {
	r, err := ParseReference(i.Image)
	if err != nil {
		return "", err
	}

	return r.Host + "/" + r.Repository + "@" + i.Digest, nil
}

// Reference is a parsed image reference.
type Reference struct {
	Host       string // registry host[:port], "docker.io" when the reference names none
	Repository string // path below the host
	Tag        string
}

func (r Reference) String() string {
	return r.Host + "/" + r.Repository + ":" + r.Tag
}

// ParseReference splits host/path:tag. A reference without a tag means "latest", as for any
// container image; digests are refused (the factory stand-in serves tags only).
func ParseReference(ref string) (Reference, error) {
	if ref == "" {
		return Reference{}, errors.New("machine.install.image is empty")
	}

	if strings.Contains(ref, "@") {
		return Reference{}, fmt.Errorf("image %q: digest references cannot be pulled in the testbed, use a tag", ref)
	}

	var r Reference

	name := ref
	if slash := strings.LastIndex(ref, "/"); strings.LastIndex(ref, ":") > slash {
		colon := strings.LastIndex(ref, ":")
		name, r.Tag = ref[:colon], ref[colon+1:]
	} else {
		r.Tag = "latest"
	}

	first, rest, found := strings.Cut(name, "/")
	if found && (strings.ContainsAny(first, ".:") || first == "localhost") {
		r.Host, r.Repository = first, rest
	} else {
		r.Host, r.Repository = "docker.io", name
	}

	if r.Repository == "" || r.Tag == "" {
		return Reference{}, fmt.Errorf("image %q is not a valid image reference", ref)
	}

	return r, nil
}

// loopbackHost returns host:port of a registry on a loopback address (port 80 by default).
func loopbackHost(host string) (string, bool) {
	h, port, err := net.SplitHostPort(host)
	if err != nil {
		h, port = host, "80"
	}

	addr, err := netip.ParseAddr(h)
	if err != nil || !addr.Is4() || !netip.MustParsePrefix("127.0.0.0/8").Contains(addr) {
		return "", false
	}

	return net.JoinHostPort(addr.String(), port), true
}

// Puller resolves installer references.
type Puller struct {
	// Client talks to the testbed's Image Factory (nil: a client with a 5 s timeout).
	Client *http.Client
}

// manifest is the testbed Image Factory's answer for an installer.
type manifest struct {
	Schematic          string   `json:"schematic"`
	Flavour            string   `json:"flavour"`
	TalosVersion       string   `json:"talos_version"`
	SecureBoot         bool     `json:"secureboot"`
	ExtraKernelArgs    []string `json:"extra_kernel_args"`
	OfficialExtensions []string `json:"official_extensions"`
}

type registryErrors struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// Pull resolves ref to the installer it names, or fails with the reason a pull would fail.
func (p Puller) Pull(ctx context.Context, ref string) (Installer, error) {
	r, err := ParseReference(ref)
	if err != nil {
		return Installer{}, err
	}

	if !release.Bootable(r.Tag) {
		return Installer{}, fmt.Errorf("image %q: installer tag %s cannot boot on the emulated machines (releases %s only)",
			ref, r.Tag, release.BootableRange())
	}

	if r.Host+"/"+r.Repository == StockRepository {
		if !release.StockInstallerPublished(r.Tag) {
			return Installer{}, &NotFoundError{Err: fmt.Errorf("image %q: %s is not published for Talos v1.14 and later (use an Image Factory installer)", ref, StockRepository)}
		}

		return Installer{Image: ref, TalosVersion: r.Tag, Digest: digestOf([]byte(ref))}, nil
	}

	addr, ok := loopbackHost(r.Host)
	if !ok {
		return Installer{}, fmt.Errorf("image %q: registry %s cannot be reached from the testbed (only an Image Factory on a loopback address can be pulled; the stock %s is known without a pull)",
			ref, r.Host, StockRepository)
	}

	flavour, id, found := strings.Cut(r.Repository, "/")
	if !found || (flavour != FlavourMetal && flavour != FlavourMetalSecureBoot) {
		return Installer{}, fmt.Errorf("image %q: not an Image Factory metal installer (<host>/%s/<schematic id>:<tag> or <host>/%s/<schematic id>:<tag>)",
			ref, FlavourMetal, FlavourMetalSecureBoot)
	}

	if raw, err := hex.DecodeString(id); err != nil || len(raw) != 32 || strings.ToLower(id) != id {
		return Installer{}, fmt.Errorf("image %q: %q is not a schematic ID (64 lowercase hex digits)", ref, id)
	}

	m, digest, err := p.fetch(ctx, addr, flavour, id, r.Tag)
	if err != nil {
		return Installer{}, fmt.Errorf("pulling image %q: %w", ref, err)
	}

	// the answer must be the installer asked for
	switch {
	case m.Schematic != id:
		return Installer{}, fmt.Errorf("pulling image %q: the factory answered schematic %q", ref, m.Schematic)
	case m.Flavour != flavour:
		return Installer{}, fmt.Errorf("pulling image %q: the factory answered flavour %q", ref, m.Flavour)
	case m.TalosVersion != r.Tag:
		return Installer{}, fmt.Errorf("pulling image %q: the factory answered Talos %q", ref, m.TalosVersion)
	case m.SecureBoot != (flavour == FlavourMetalSecureBoot):
		return Installer{}, fmt.Errorf("pulling image %q: the factory answered secureboot %v for flavour %s", ref, m.SecureBoot, flavour)
	}

	return Installer{
		Image:              ref,
		Schematic:          id,
		ExtraKernelArgs:    m.ExtraKernelArgs,
		OfficialExtensions: m.OfficialExtensions,
		SecureBoot:         m.SecureBoot,
		TalosVersion:       m.TalosVersion,
		Digest:             digest,
	}, nil
}

// NotFoundError is a pull the registry answered 404: the image does not exist.
type NotFoundError struct{ Err error }

func (e *NotFoundError) Error() string { return e.Err.Error() }
func (e *NotFoundError) Unwrap() error { return e.Err }

func digestOf(content []byte) string {
	sum := sha256.Sum256(content)

	return "sha256:" + hex.EncodeToString(sum[:])
}

func (p Puller) fetch(ctx context.Context, addr, flavour, id, tag string) (manifest, string, error) {
	client := p.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}

	url := fmt.Sprintf("http://%s/v2/%s/%s/manifests/%s", addr, flavour, id, tag)

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return manifest{}, "", err
	}

	resp, err := client.Do(req)
	if err != nil {
		return manifest{}, "", err
	}

	defer resp.Body.Close() //nolint:errcheck

	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return manifest{}, "", err
	}

	if resp.StatusCode != http.StatusOK {
		var errs registryErrors
		if json.Unmarshal(body, &errs) == nil && len(errs.Errors) > 0 {
			parts := make([]string, 0, len(errs.Errors))
			for _, e := range errs.Errors {
				parts = append(parts, e.Code+": "+e.Message)
			}

			err := fmt.Errorf("%s: %s", resp.Status, strings.Join(parts, "; "))
			if resp.StatusCode == http.StatusNotFound {
				return manifest{}, "", &NotFoundError{Err: err}
			}

			return manifest{}, "", err
		}

		return manifest{}, "", fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}

	var m manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return manifest{}, "", fmt.Errorf("the factory's answer is not an installer manifest: %w", err)
	}

	return m, digestOf(body), nil
}
