package pep

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"

	"github.com/xmppd/xmppd/modules/vcard"
	"github.com/xmppd/xmppd/storage"
	"github.com/xmppd/xmppd/xmpp"
)

// Avatars are kept in two places, for two generations of clients: the
// data and metadata nodes of XEP-0084, and the PHOTO of the vCard
// (XEP-0054) whose hash goes in presence (XEP-0153). A change to either is
// made to the other, as XEP-0398 describes; the account announces it.
const (
	NSAvatarData     = "urn:xmpp:avatar:data"
	NSAvatarMetadata = "urn:xmpp:avatar:metadata"
	// NSAvatarConversion is XEP-0398's feature.
	NSAvatarConversion = "urn:xmpp:pep-vcard-conversion:0"
)

// AvatarHashes is what the module needs of the vCard module: to say that
// an account's avatar hash changed, so that its presence carries it.
type AvatarHashes interface {
	SetAvatarHash(ctx context.Context, owner, hash string)
}

// avatarPublished turns a new XEP-0084 avatar of owner into the vCard's
// PHOTO (XEP-0398 §3.1): the image of the metadata's first <info/> that
// has no url, read from the data node; empty metadata removes the photo.
func (m *Module) avatarPublished(ctx context.Context, owner string, payload []byte) {
	if m.Docs == nil || syncing(ctx) {
		return
	}
	meta, err := xmpp.ParseElement(payload)
	if err != nil || meta.Space != NSAvatarMetadata || meta.Local != "metadata" {
		return
	}
	var info *xmpp.Element
	for _, c := range meta.Elements() {
		if c.Space == NSAvatarMetadata && c.Local == "info" && c.Get("url") == "" && c.Get("id") != "" {
			info = c
			break
		}
	}
	var photo *xmpp.Element
	hash := ""
	if info != nil {
		its, err := m.Store.PEPItems(ctx, owner, NSAvatarData, []string{info.Get("id")}, 0)
		if err != nil || len(its) == 0 {
			return // the data is published first (XEP-0084 §4.1); without it there is nothing to copy
		}
		data, err := xmpp.ParseElement(its[0].Payload)
		if err != nil || data.Space != NSAvatarData {
			return
		}
		typ := info.Get("type")
		if typ == "" {
			typ = "image/png"
		}
		photo = xmpp.NewElement(vcard.NS, "PHOTO").Add(
			xmpp.NewElement(vcard.NS, "TYPE").Add(xmpp.Text(typ)),
			xmpp.NewElement(vcard.NS, "BINVAL").Add(xmpp.Text(strings.TrimSpace(data.Text()))))
		hash = strings.ToLower(info.Get("id"))
	}
	card := xmpp.NewElement(vcard.NS, "vCard")
	if stored, err := m.Docs.XMLDoc(ctx, owner, vcard.Key); err == nil {
		if c, err := xmpp.ParseElement(stored); err == nil {
			card = c
		}
	} else if !errors.Is(err, storage.ErrNotFound) {
		m.srv.Log().Warn("pep: reading the vCard for the avatar", "jid", owner, "err", err)
		return
	}
	if vcard.PhotoHash(card) == hash {
		return
	}
	kept := card.Children[:0:0]
	for _, c := range card.Children {
		if e, ok := c.(*xmpp.Element); ok && e.Space == vcard.NS && e.Local == "PHOTO" {
			continue
		}
		kept = append(kept, c)
	}
	card.Children = kept
	if photo != nil {
		card.Add(photo)
	}
	if err := m.Docs.PutXMLDoc(ctx, owner, vcard.Key, card.Bytes(""), storage.XMLDocLimits{}); err != nil {
		m.srv.Log().Warn("pep: storing the avatar in the vCard", "jid", owner, "err", err)
		return
	}
	if m.Avatars != nil {
		m.Avatars.SetAvatarHash(ctx, owner, hash)
	}
}

// VCardChanged is vcard.Module's Changed: a vCard's new PHOTO is published
// as the XEP-0084 avatar (XEP-0398 §3.2), data first, then metadata; a
// vCard without one publishes empty metadata (no avatar), when there was
// one.
func (m *Module) VCardChanged(ctx context.Context, owner string, card *xmpp.Element) {
	if syncing(ctx) {
		return
	}
	ctx = context.WithValue(ctx, syncingKey{}, true)
	hash := ""
	if card != nil {
		hash = vcard.PhotoHash(card)
	}
	current := ""
	if svc, err := m.service(ctx, owner); err == nil {
		if n := svc.nodes[NSAvatarMetadata]; n != nil && n.last != nil {
			current = n.last.ID
		} else if hash == "" {
			svc.mu.Unlock()
			return // no avatar before, none now
		}
		svc.mu.Unlock()
	} else {
		m.srv.Log().Warn("pep: reading nodes", "jid", owner, "err", err)
		return
	}
	if current == hash && hash != "" {
		return
	}
	meta := xmpp.NewElement(NSAvatarMetadata, "metadata")
	if hash != "" {
		photo := card.Child(vcard.NS, "PHOTO")
		b64 := strings.Join(strings.Fields(photo.Child(vcard.NS, "BINVAL").Text()), "")
		raw, _ := base64.StdEncoding.DecodeString(b64) // PhotoHash decoded it
		typ := "image/png"
		if t := photo.Child(vcard.NS, "TYPE"); t != nil && strings.TrimSpace(t.Text()) != "" {
			typ = strings.TrimSpace(t.Text())
		}
		data := xmpp.NewElement(NSAvatarData, "data").Add(xmpp.Text(b64))
		if _, err := m.Publish(ctx, owner, owner, NSAvatarData, hash, data.Bytes(""), nil); err != nil {
			m.srv.Log().Warn("pep: publishing the vCard's avatar", "jid", owner, "err", err)
			return
		}
		meta.Add(xmpp.NewElement(NSAvatarMetadata, "info", "id", hash, "bytes", strconv.Itoa(len(raw)), "type", typ))
	}
	id := hash
	if id == "" {
		id = "none"
	}
	if _, err := m.Publish(ctx, owner, owner, NSAvatarMetadata, id, meta.Bytes(""), nil); err != nil {
		m.srv.Log().Warn("pep: publishing the vCard's avatar", "jid", owner, "err", err)
	}
}
