package machines

// Machined's event stream (MachineService.Events, what `talosctl reboot/upgrade --wait` track):
// an in-memory buffer per boot, as machined's (internal/app/machined/pkg/runtime/v1alpha1/
// v1alpha1_events.go; a reboot loses it). The emulator publishes what the tracker
// (cmd/talosctl/pkg/talos/action/tracker.go, node.go) reads: the reboot SequenceEvent and
// MachineStatusEvents (machine_status_publisher.go).

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/rs/xid"
	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// eventCapacity bounds a node's buffer (machined keeps a fixed ring of events too).
const eventCapacity = 1000

type event struct {
	id      xid.ID // sortable by time (its time: tail_seconds), as machined's (runtime.NewEvent)
	actorID string
	payload proto.Message
}

// toProto encodes an event as machined's Event.ToMachineEvent does (internal/app/machined/
// pkg/runtime/events.go): type URL talos/runtime/<full name>, empty for the hello event.
func (e event) toProto() (*machine.Event, error) {
	typeURL := ""
	if e.payload != nil {
		typeURL = "talos/runtime/" + string(e.payload.ProtoReflect().Descriptor().FullName())
	}

	value, err := proto.Marshal(e.payload)
	if err != nil {
		return nil, err
	}

	return &machine.Event{Data: &anypb.Any{TypeUrl: typeURL, Value: value}, Id: e.id.String(), ActorId: e.actorID}, nil
}

// newBootID is a fresh /proc/sys/kernel/random/boot_id (a random UUID, new on every boot).
func newBootID() string { return uuid.NewString() }

// publish appends an event to the node's buffer and wakes its watchers. Called with em.mu held.
func (n *Node) publish(actorID string, payload proto.Message) {
	n.events = append(n.events, event{id: xid.New(), actorID: actorID, payload: payload})
	if len(n.events) > eventCapacity {
		n.events = slices.Clone(n.events[len(n.events)-eventCapacity:])
	}

	n.wakeWatchers()
}

// wakeWatchers tells the node's event watchers to look again. Called with em.mu held.
func (n *Node) wakeWatchers() {
	if n.eventsChanged != nil {
		close(n.eventsChanged)
	}

	n.eventsChanged = make(chan struct{})
}

// machineStatus is the node's stage and readiness as machined's MachineStatusController
// computes them (internal/app/machined/pkg/controllers/runtime/machine_status.go): a
// configured node is ready once its services run and pass their health checks, the required
// ones (apid, machined, kubelet; etcd and trustd on control planes) included. Not evaluated:
// time sync, network, static pods and the Node's Ready condition. Called with em.mu held.
func (n *Node) machineStatus() (machine.MachineStatusEvent_MachineStage, *machine.MachineStatusEvent_MachineStatus) {
	if !n.configured() {
		return machine.MachineStatusEvent_MAINTENANCE, &machine.MachineStatusEvent_MachineStatus{}
	}

	var problems []string

	for _, id := range n.serviceIDs() {
		svc := n.services[id]

		switch {
		case svc.state != "Running":
			problems = append(problems, id+" not running")
		case !svc.healthy && slices.Contains(healthChecked, id):
			problems = append(problems, id+" not healthy")
		}
	}

	st := &machine.MachineStatusEvent_MachineStatus{Ready: len(problems) == 0}
	if len(problems) > 0 {
		st.UnmetConditions = []*machine.MachineStatusEvent_MachineStatus_UnmetCondition{{Name: "services", Reason: strings.Join(problems, ", ")}}
	}

	return machine.MachineStatusEvent_RUNNING, st
}

// publishStatus publishes a MachineStatusEvent when the node's stage or readiness changed
// (machine_status_publisher.go publishes on every change of the MachineStatus resource).
// Called with em.mu held.
func (n *Node) publishStatus() {
	if n.off {
		return
	}

	stage, st := n.machineStatus()
	key := fmt.Sprintf("%s/%v/%v", stage, st.Ready, st.UnmetConditions)

	if key == n.lastStatus {
		return
	}

	n.lastStatus = key
	n.publish("", &machine.MachineStatusEvent{Stage: stage, Status: st})
}

// WatchEvents streams the node's events as machined's Events handler does
// (internal/app/machined/internal/server/v1alpha1/v1alpha1_server.go Events): an empty hello
// event first, then the buffered events the request's tail_events (-1: all), tail_id (those
// after it) or tail_seconds select, then new ones, filtered by with_actor_id. The stream ends
// (Unavailable) when the machine goes down: its connections die with it.
func (em *Emulator) WatchEvents(ctx context.Context, n *Node, req *machine.EventsRequest, send func(*machine.Event) error) error {
	var tailID xid.ID

	if req.TailId != "" {
		var err error
		if tailID, err = xid.FromString(req.TailId); err != nil {
			return fmt.Errorf("error parsing tail_id: %w", err)
		}
	}

	hello, err := event{id: xid.New(), actorID: req.WithActorId}.toProto()
	if err != nil {
		return err
	}

	if err := send(hello); err != nil {
		return err
	}

	em.mu.Lock()
	bootID := n.bootID
	next := tailStart(n.events, req, tailID)
	em.mu.Unlock()

	for {
		em.mu.Lock()

		if n.bootID != bootID {
			em.mu.Unlock()

			return status.Error(codes.Unavailable, "connection reset: the machine rebooted")
		}

		pending := slices.Clone(n.events[min(next, len(n.events)):])
		next = len(n.events)
		down := n.off
		wake := n.eventsChanged

		if wake == nil {
			n.wakeWatchers()
			wake = n.eventsChanged
		}

		em.mu.Unlock()

		for _, e := range pending {
			if req.WithActorId != "" && e.actorID != req.WithActorId {
				continue
			}

			msg, err := e.toProto()
			if err != nil {
				return err
			}

			if err := send(msg); err != nil {
				return err
			}
		}

		if down {
			return status.Error(codes.Unavailable, "connection reset: the machine went down")
		}

		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// tailStart is the index of the first buffered event a watch request asks for, the options
// taken in machined's order (runtime/v1alpha1/v1alpha1_events.go Watch): tail_events, then the
// events after tail_id, then those of the last tail_seconds.
func tailStart(events []event, req *machine.EventsRequest, tailID xid.ID) int {
	first := func(keep func(event) bool) int {
		if i := slices.IndexFunc(events, keep); i >= 0 {
			return i
		}

		return len(events)
	}

	switch {
	case req.TailEvents < 0:
		return 0
	case req.TailEvents > 0:
		return max(0, len(events)-int(req.TailEvents))
	case req.TailId != "":
		return first(func(e event) bool { return e.id.Compare(tailID) > 0 })
	case req.TailSeconds > 0:
		since := time.Now().Add(-time.Duration(req.TailSeconds) * time.Second)

		return first(func(e event) bool { return e.id.Time().After(since) })
	default:
		return len(events)
	}
}
