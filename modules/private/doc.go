// Package private implements Private XML Storage (XEP-0049,
// jabber:iq:private): one XML element per namespace and name, kept for its
// account alone, whatever it holds (XEP-0048 bookmarks among them), within
// a size limit.
package private
