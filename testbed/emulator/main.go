// Command talos-emulator stands in for Talos machines in the collection's test bed: one
// process serves the Talos machine API (gRPC over TLS, port 50000) on each emulated node's
// loopback address, so the real talosctl can configure, bootstrap and inspect them.
//
//	talos-emulator --nodes NODES.yaml --state DIR
//
// See README.md for what is emulated. The machines are package machines, their API package
// talosapi, their kernel view package kernel.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/constants"
	"google.golang.org/grpc"

	"solanaops.testbed/emulator/machines"
	"solanaops.testbed/emulator/talosapi"
)

func main() {
	nodesPath := flag.String("nodes", "", "NODES.yaml describing the emulated machines (required)")
	stateDir := flag.String("state", "", "directory keeping each node's state under DIR/<name>/ (required)")
	port := flag.Int("port", constants.ApidPort, "Talos API port on every node address")
	rebootDelay := flag.Duration("reboot-delay", 5*time.Second, "how long a reboot (after an install or a reboot-needing apply) keeps a machine down")
	shutdownDelay := flag.Duration("shutdown-delay", 3*time.Second, "how long a machine keeps answering after a Shutdown request before it powers off")

	var tools machines.Tools

	flag.StringVar(&tools.Etcd, "etcd", "", "etcd binary: control planes run real etcd and Kubernetes (needs --kube)")
	tools.Kube = machines.KubeBinaries{}
	flag.Var(tools.Kube, "kube", "VERSION=PATH (repeatable): the kube binary (kube-apiserver|kube-controller-manager|kube-scheduler) of Kubernetes VERSION; a control plane runs the one its config's image tag names")
	flag.StringVar(&tools.Kwok, "kwok", "", "kwok binary keeping the registered Nodes Ready")
	flag.StringVar(&tools.KwokConfig, "kwok-config", "", "kwok stages file")
	flag.Parse()

	logger := log.New(os.Stderr, "talos-emulator: ", log.LstdFlags|log.Lmicroseconds)

	if *nodesPath == "" || *stateDir == "" {
		flag.Usage()
		os.Exit(2)
	}

	if err := run(*nodesPath, *stateDir, *port, *rebootDelay, *shutdownDelay, tools, logger); err != nil {
		logger.Printf("error: %v", err)
		os.Exit(1)
	}
}

func run(nodesPath, stateDir string, port int, rebootDelay, shutdownDelay time.Duration, tools machines.Tools, logger *log.Logger) error {
	specs, err := machines.LoadNodeSpecs(nodesPath)
	if err != nil {
		return err
	}

	em, err := machines.New(specs, stateDir, tools, logger.Printf)
	if err != nil {
		return err
	}

	em.RebootDelay = rebootDelay
	em.ShutdownDelay = shutdownDelay

	if err := em.Serve(port, func(n *machines.Node) *grpc.Server { return talosapi.NewServer(em, n) }); err != nil {
		return err
	}

	for _, line := range em.Describe() {
		fmt.Println("ready: " + line)
	}

	stopControl, err := em.ServeControl(filepath.Join(stateDir, "control.sock"))
	if err != nil {
		em.StopServing()

		return err
	}

	stop, stopped := make(chan struct{}), make(chan struct{})
	if tools.Enabled() {
		go em.RunControlPlanes(stop, stopped)
	} else {
		close(stopped)
	}

	fmt.Println("ready")

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)

	sig := <-signals
	logger.Printf("%s received, stopping", sig)

	stopControl()
	em.StopServing()
	close(stop)
	<-stopped

	return nil
}
