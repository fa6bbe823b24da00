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
	// longer than lim.MaxBytes, or when it adds a key and owner would then
	// hold more than lim.MaxDocs documents, it stores nothing and fails
	// with ErrLimit; replacing a document never fails for the count.
	PutXMLDoc(ctx context.Context, owner, key string, data []byte, lim XMLDocLimits) error
	// DeleteXMLDoc removes owner's document under key; none is not an
	// error.
	DeleteXMLDoc(ctx context.Context, owner, key string) error
}

// XMLDocLimits bound what PutXMLDoc keeps; a field that is zero or
// negative sets no limit.
type XMLDocLimits struct {
	// MaxBytes bounds one document.
	MaxBytes int
	// MaxDocs bounds how many documents one owner holds, under every key.
	MaxDocs int
}
