package storage

import "context"

// XMLDocs stores small XML documents per account, each under a key: the
// account's vCard (XEP-0054, key "vcard-temp") and its private XML storage
// (XEP-0049, key "{namespace}local" of the stored element, bookmarks of
// XEP-0048 among them). The store keeps the bytes it is given and does not
// interpret them.
type XMLDocs interface {
	// XMLDoc returns owner's document under key; ErrNotFound if none.
	XMLDoc(ctx context.Context, owner, key string) ([]byte, error)
	// PutXMLDoc adds or replaces owner's document under key. When data is
	// longer than maxBytes (maxBytes > 0) it stores nothing and fails with
	// ErrLimit.
	PutXMLDoc(ctx context.Context, owner, key string, data []byte, maxBytes int) error
	// DeleteXMLDoc removes owner's document under key; none is not an
	// error.
	DeleteXMLDoc(ctx context.Context, owner, key string) error
}
