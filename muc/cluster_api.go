package muc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// The administrators' calls on a room (api.go) in a cluster: the node the
// admin API reached may not host the room. It then asks the host over the
// bus to make the call (xmpp.Server.AskNode), and waits for its answer.

// errNoHost is a call whose room's host did not answer.
var errNoHost = errors.New("muc: the node hosting the room does not answer")

// An apiCall is an administrator's call handed to the room's host.
type apiCall struct {
	Call    string                `json:"call"`
	Room    string                `json:"room"`
	Config  *storage.RoomConfig   `json:"config,omitempty"`
	Affs    []storage.Affiliation `json:"affs,omitempty"`
	Reason  string                `json:"reason,omitempty"`
	Subject string                `json:"subject,omitempty"`
	Body    string                `json:"body,omitempty"`
}

// An apiAnswer is the host's answer.
type apiAnswer struct {
	Err       string     `json:"err,omitempty"`
	NotFound  bool       `json:"not_found,omitempty"`
	LastOwner bool       `json:"last_owner,omitempty"`
	State     *RoomState `json:"state,omitempty"`
}

// registerCalls makes the service answer other nodes' calls.
func (s *Service) registerCalls(srv *xmpp.Server) {
	srv.HandleClusterOp("muc-call", func(_ context.Context, op *xmpp.Element) {
		var c apiCall
		if err := json.Unmarshal([]byte(op.Text()), &c); err != nil {
			return
		}
		srv.Go(func(ctx context.Context) {
			b, _ := json.Marshal(s.answerCall(ctx, c))
			srv.Answer(ctx, op, xmpp.Text(string(b)))
		})
	})
}

// hostElsewhere returns the node that hosts bare when it is not this one,
// "" when this node does or should (it took the lease), or there is no
// cluster.
func (s *Service) hostElsewhere(ctx context.Context, bare string) (string, error) {
	if !s.clustered() {
		return "", nil
	}
	s.mu.Lock()
	_, here := s.rooms[bare]
	s.mu.Unlock()
	if here {
		return "", nil
	}
	node, err := s.Hosting.HostRoom(ctx, bare)
	if err != nil {
		return "", err
	}
	if node == s.srv.Node() {
		return "", nil
	}
	return node, nil
}

// callHost hands c to node and returns its answer as an error (and the
// room's state, for "room").
func (s *Service) callHost(ctx context.Context, node string, c apiCall) (RoomState, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return RoomState{}, err
	}
	reply := s.srv.AskNode(ctx, node, xmpp.NewElement(xmpp.NSCluster, "muc-call").Add(xmpp.Text(string(b))))
	if reply == nil {
		return RoomState{}, errNoHost
	}
	var a apiAnswer
	if err := json.Unmarshal([]byte(reply.Text()), &a); err != nil {
		return RoomState{}, fmt.Errorf("muc: room %s, on node %s: %w", c.Room, node, err)
	}
	switch {
	case a.NotFound:
		return RoomState{}, fmt.Errorf("muc: room %s: %w", c.Room, storage.ErrNotFound)
	case a.LastOwner:
		return RoomState{}, ErrLastOwner
	case a.Err != "":
		return RoomState{}, fmt.Errorf("muc: room %s, on node %s: %s", c.Room, node, a.Err)
	case a.State != nil:
		return *a.State, nil
	}
	return RoomState{}, nil
}

// answerCall makes another node's call here, where the room is hosted
// (or should be: the lease moved here meanwhile).
func (s *Service) answerCall(ctx context.Context, c apiCall) apiAnswer {
	var err error
	var st RoomState
	switch c.Call {
	case "room":
		st, err = s.roomHere(ctx, c.Room)
	case "configure":
		if c.Config == nil {
			return apiAnswer{Err: "no configuration"}
		}
		err = s.configureHere(ctx, c.Room, *c.Config)
	case "affiliations":
		err = s.setAffiliationsHere(ctx, c.Room, c.Affs)
	case "destroy":
		err = s.destroyHere(ctx, c.Room, c.Reason)
	case "announce":
		err = s.announceHere(ctx, c.Room, c.Subject, c.Body)
	default:
		return apiAnswer{Err: "unknown call " + c.Call}
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return apiAnswer{NotFound: true}
	case errors.Is(err, ErrLastOwner):
		return apiAnswer{LastOwner: true}
	case err != nil:
		return apiAnswer{Err: err.Error()}
	case c.Call == "room":
		return apiAnswer{State: &st}
	}
	return apiAnswer{}
}
