// Command image-factory is the testbed's Image Factory: it registers schematics with the
// Image Factory's own schematic package (github.com/siderolabs/image-factory/pkg/schematic),
// so IDs are the real factory's, and answers installer pulls with the schematic's
// customization instead of an image. It builds no images. Loopback only.
//
//	image-factory serve --listen 127.0.1.5:5000 --state DIR
//	image-factory id [FILE]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/siderolabs/image-factory/pkg/schematic"
)

const usage = `usage:
  image-factory serve --listen ADDR:PORT --state DIR   serve the API on a loopback address
  image-factory id [FILE]                              print the ID of a schematic (FILE or stdin)
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)

		return 2
	}

	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "id":
		return printID(args[1:], stdin, stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)

		return 0
	default:
		fmt.Fprintf(stderr, "unknown command %q\n%s", args[0], usage)

		return 2
	}
}

// SchematicID is what the factory answers for a schematic: the package's Unmarshal (unknown
// fields refused), then ID().
func SchematicID(data []byte) (string, error) {
	cfg, err := schematic.Unmarshal(data)
	if err != nil {
		return "", err
	}

	return cfg.ID()
}

func printID(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 1 {
		fmt.Fprint(stderr, usage)

		return 2
	}

	var (
		data []byte
		err  error
	)

	if len(args) == 0 || args[0] == "-" {
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(args[0])
	}

	if err != nil {
		fmt.Fprintln(stderr, err)

		return 1
	}

	id, err := SchematicID(data)
	if err != nil {
		fmt.Fprintln(stderr, err)

		return 1
	}

	fmt.Fprintln(stdout, id)

	return 0
}

// checkLoopback accepts only a loopback IP literal: the testbed never serves beyond this host.
func checkLoopback(listen string) error {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return fmt.Errorf("--listen %q: %w", listen, err)
	}

	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--listen %q: only a loopback address (127.0.0.0/8, ::1) is allowed", listen)
	}

	return nil
}

func serve(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("serve", flag.ContinueOnError)
	flags.SetOutput(stderr)
	listen := flags.String("listen", "", "loopback ADDR:PORT to serve on (required)")
	stateDir := flags.String("state", "", "directory keeping registered schematics under DIR/schematics (required)")

	if err := flags.Parse(args); err != nil {
		return 2
	}

	if *listen == "" || *stateDir == "" || flags.NArg() > 0 {
		fmt.Fprintln(stderr, "serve needs --listen and --state, and no arguments")

		return 2
	}

	logger := log.New(stderr, "image-factory: ", log.LstdFlags|log.Lmicroseconds)

	if err := checkLoopback(*listen); err != nil {
		logger.Print(err)

		return 1
	}

	store, err := OpenStore(*stateDir)
	if err != nil {
		logger.Print(err)

		return 1
	}

	listener, err := net.Listen("tcp", *listen)
	if err != nil {
		logger.Printf("cannot serve on %s: %v", *listen, err)

		return 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	server := &http.Server{
		Handler:           Handler(store, logger),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          logger,
	}

	// counted before serving: handlers change the store concurrently from then on
	logger.Printf("serving %d schematics from %s", len(store.byID), store.dir)

	served := make(chan error, 1)

	go func() { served <- server.Serve(listener) }()

	fmt.Fprintf(stdout, "ready: http://%s\n", listener.Addr())

	select {
	case err := <-served:
		logger.Print(err)

		return 1
	case <-ctx.Done():
	}

	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := server.Shutdown(shutdown); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Print(err)

		return 1
	}

	logger.Print("stopped")

	return 0
}
