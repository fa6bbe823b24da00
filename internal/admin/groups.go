package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"unicode/utf8"

	"github.com/xmppd/xmppd/storage"
)

// groups is the API's teams and projects area: the groups of
// docs/teams.md. Every change goes to storage, whose watch brings it to
// the online members' rosters at once (roster pushes and presence), the
// same way as a change by xmppctl or by the app's own SQL.
type groups struct{ a *API }

func (p groups) routes() []route {
	return []route{
		{method: "GET", path: "/groups", h: p.list},
		{method: "POST", path: "/groups", change: true, h: p.create},
		{method: "GET", path: "/groups/{id}", h: p.get},
		{method: "PATCH", path: "/groups/{id}", change: true, h: p.rename},
		{method: "DELETE", path: "/groups/{id}", change: true, h: p.delete},
		{method: "GET", path: "/groups/{id}/members", h: p.members},
		{method: "POST", path: "/groups/{id}/members", change: true, h: p.changeMembers},
		{method: "PUT", path: "/groups/{id}/members/{jid}", change: true, h: p.addMember},
		{method: "DELETE", path: "/groups/{id}/members/{jid}", change: true, h: p.removeMember},
	}
}

// maxGroupText bounds a group's ID and name (in characters).
const maxGroupText = 256

// Group is a team or project as the API shows it.
type Group struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"`
	Name   string `json:"name"`
	Parent string `json:"parent,omitempty"`
	// Members are given by GET /groups/{id} and when it is created.
	Members []string `json:"members,omitempty"`
}

func groupOf(g storage.Group, members []string) Group {
	return Group{ID: g.ID, Kind: g.Kind, Name: g.Name, Parent: g.Parent, Members: members}
}

func (p groups) list(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := paging(r)
	if err != nil {
		return err
	}
	kind := r.URL.Query().Get("kind")
	if kind != "" && kind != storage.KindTeam && kind != storage.KindProject {
		return invalid("kind", "must be %s or %s", storage.KindTeam, storage.KindProject)
	}
	all, err := p.a.Store.ListGroups(r.Context())
	if err != nil {
		return err
	}
	byID := make(map[string]storage.Group, len(all))
	var ids []string
	for _, g := range all {
		if kind == "" || g.Kind == kind {
			byID[g.ID] = g
			ids = append(ids, g.ID)
		}
	}
	ids, next := pageOf(ids, cursor, limit)
	page := Page[Group]{Items: []Group{}, NextCursor: next}
	for _, id := range ids {
		page.Items = append(page.Items, groupOf(byID[id], nil))
	}
	return writeJSON(w, http.StatusOK, page)
}

// checkName is a 400 for a name rosters could not show.
func checkName(field, name string) error {
	switch {
	case name == "":
		return invalid(field, "is empty")
	case !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxGroupText:
		return invalid(field, "must be UTF-8 of at most %d characters", maxGroupText)
	}
	return nil
}

func (p groups) create(w http.ResponseWriter, r *http.Request) error {
	var req Group
	if err := decode(r, &req); err != nil {
		return err
	}
	ctx := r.Context()
	if req.Name == "" {
		req.Name = req.ID
	}
	if err := checkName("id", req.ID); err != nil {
		return err
	}
	if err := checkName("name", req.Name); err != nil {
		return err
	}
	switch {
	case req.Kind != storage.KindTeam && req.Kind != storage.KindProject:
		return invalid("kind", "must be %s or %s", storage.KindTeam, storage.KindProject)
	case req.Parent != "" && req.Kind != storage.KindProject:
		return invalid("parent", "only a project has a parent team")
	}
	members, err := p.a.memberList("members", req.Members)
	if err != nil {
		return err
	}
	if req.Parent != "" {
		parent, err := p.a.Store.Group(ctx, req.Parent)
		if errors.Is(err, storage.ErrNotFound) {
			return notFound("no team %q", req.Parent)
		}
		if err != nil {
			return err
		}
		if parent.Kind != storage.KindTeam {
			return invalid("parent", "%q is a %s, not a team", req.Parent, parent.Kind)
		}
	}
	g := storage.Group{ID: req.ID, Kind: req.Kind, Name: req.Name, Parent: req.Parent}
	err = p.a.Store.CreateGroup(ctx, g)
	switch {
	case errors.Is(err, storage.ErrExists):
		return conflict("group %q exists", req.ID)
	case errors.Is(err, storage.ErrNotFound): // the team went meanwhile
		return notFound("no team %q", req.Parent)
	case err != nil:
		return err
	}
	if len(members) > 0 {
		if err := p.a.Store.ChangeMembers(ctx, g.ID, members, nil); err != nil {
			// The group and its members are two steps: undo the first, so
			// that a failed creation leaves no group behind.
			if derr := p.a.Store.DeleteGroup(context.WithoutCancel(ctx), g.ID); derr != nil {
				p.a.Log.Error("admin API: undoing a group's creation", "group", g.ID, "err", derr)
			}
			return err
		}
	}
	return writeJSON(w, http.StatusCreated, groupOf(g, members))
}

// memberList reads a list of accounts: distinct, sorted, each checked (400
// naming field[i]).
func (a *API) memberList(field string, list []string) ([]string, error) {
	if len(list) > maxRecipients {
		return nil, invalid(field, "names more than %d accounts", maxRecipients)
	}
	out := []string{}
	for i, s := range list {
		j, err := a.parseAddress(s, true)
		if err != nil {
			return nil, invalid(fmt.Sprintf("%s[%d]", field, i), "%v", err)
		}
		out = append(out, j)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// group reads the group of the request's {id}; 404 when there is none.
func (p groups) group(r *http.Request) (storage.Group, error) {
	id := r.PathValue("id")
	g, err := p.a.Store.Group(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return g, notFound("no team or project %q", id)
	}
	return g, err
}

func (p groups) get(w http.ResponseWriter, r *http.Request) error {
	g, err := p.group(r)
	if err != nil {
		return err
	}
	members, err := p.a.Store.Members(r.Context(), g.ID)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("no team or project %q", g.ID)
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, groupOf(g, members))
}

func (p groups) rename(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := checkName("name", req.Name); err != nil {
		return err
	}
	g, err := p.group(r)
	if err != nil {
		return err
	}
	err = p.a.Store.RenameGroup(r.Context(), g.ID, req.Name)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("no team or project %q", g.ID)
	}
	if err != nil {
		return err
	}
	g.Name = req.Name
	return writeJSON(w, http.StatusOK, groupOf(g, nil))
}

func (p groups) delete(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	err := p.a.Store.DeleteGroup(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("no team or project %q", id)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (p groups) members(w http.ResponseWriter, r *http.Request) error {
	cursor, limit, err := paging(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	members, err := p.a.Store.Members(r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("no team or project %q", id)
	}
	if err != nil {
		return err
	}
	items, next := pageOf(members, cursor, limit)
	return writeJSON(w, http.StatusOK, Page[string]{Items: append([]string{}, items...), NextCursor: next})
}

// changeMembers adds and removes several members at once, all or none:
// everything is checked first, then changed in one transaction.
func (p groups) changeMembers(w http.ResponseWriter, r *http.Request) error {
	var req struct {
		Add    []string `json:"add"`
		Remove []string `json:"remove"`
	}
	if err := decode(r, &req); err != nil {
		return err
	}
	add, err := p.a.memberList("add", req.Add)
	if err != nil {
		return err
	}
	remove, err := p.a.memberList("remove", req.Remove)
	if err != nil {
		return err
	}
	for i, raw := range req.Remove {
		// Checked by memberList: named by its index in the request.
		if j, _ := p.a.parseAddress(raw, true); slices.Contains(add, j) {
			return invalid(fmt.Sprintf("remove[%d]", i), "%s is also to be added", j)
		}
	}
	ctx := r.Context()
	id := r.PathValue("id")
	// One transaction in the store: all or none.
	err = p.a.Store.ChangeMembers(ctx, id, add, remove)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("no team or project %q", id)
	}
	if err != nil {
		return err
	}
	members, err := p.a.Store.Members(ctx, id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, Page[string]{Items: members})
}

// member reads the request's {jid}: 400 when it is no account here.
func (p groups) member(r *http.Request) (string, error) {
	j, err := p.a.parseAddress(r.PathValue("jid"), true)
	if err != nil {
		return "", invalid("jid", "%v", err)
	}
	return j, nil
}

// addMember makes an account a member; already being one is no error (PUT
// is idempotent).
func (p groups) addMember(w http.ResponseWriter, r *http.Request) error {
	j, err := p.member(r)
	if err != nil {
		return err
	}
	id := r.PathValue("id")
	err = p.a.Store.AddMember(r.Context(), id, j)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return notFound("no team or project %q", id)
	case err != nil && !errors.Is(err, storage.ErrExists):
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (p groups) removeMember(w http.ResponseWriter, r *http.Request) error {
	j, err := p.member(r)
	if err != nil {
		return err
	}
	g, err := p.group(r)
	if err != nil {
		return err
	}
	err = p.a.Store.RemoveMember(r.Context(), g.ID, j)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound("%s is not a member of %q", j, g.ID)
	}
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
