package main

// framer cuts a stream of XML bytes into top-level elements (the children of
// <stream:stream>) without building a tree: one pass over each byte, state
// kept between reads. It knows just enough XML for that: tags, quoted
// attribute values, self-closing tags, and declarations (<?...?>, <!...>).
// It does not check well-formedness; servers under test do that.
type framer struct {
	buf   []byte
	pos   int // next byte to scan
	start int // start of the current top-level element, or -1
	depth int

	inTag     bool
	quote     byte
	endTag    bool // </...
	decl      bool // <? or <!
	afterLT   bool // the previous byte was '<'
	lastSlash bool // the previous byte in the tag was '/'

	// opened is set when the stream header has been read.
	opened bool
	// closed is set when the stream's end tag has been read.
	closed bool
}

func newFramer(size int) *framer {
	return &framer{buf: make([]byte, 0, size), start: -1}
}

// reset forgets everything, for a stream restart (RFC 6120 §4.3.3).
func (f *framer) reset() {
	buf := f.buf[:0]
	*f = framer{buf: buf, start: -1}
}

// space returns room to read into, growing the buffer when it is full.
func (f *framer) space() []byte {
	f.compact()
	if len(f.buf) == cap(f.buf) {
		nb := make([]byte, len(f.buf), 2*cap(f.buf)+512)
		copy(nb, f.buf)
		f.buf = nb
	}
	return f.buf[len(f.buf):cap(f.buf)]
}

// filled records that n bytes were read into space().
func (f *framer) filled(n int) { f.buf = f.buf[:len(f.buf)+n] }

// compact drops bytes that no longer belong to an unfinished element.
func (f *framer) compact() {
	keep := f.pos
	if f.start >= 0 {
		keep = f.start
	}
	if keep == 0 {
		return
	}
	n := copy(f.buf, f.buf[keep:])
	f.buf = f.buf[:n]
	f.pos -= keep
	if f.start >= 0 {
		f.start -= keep
	}
}

// next returns the next complete top-level element in the buffer, or nil
// when more bytes are needed. The slice is valid until the next read.
func (f *framer) next() []byte {
	b := f.buf
	for i := f.pos; i < len(b); i++ {
		c := b[i]
		if !f.inTag {
			if c == '<' {
				f.inTag, f.afterLT, f.endTag, f.decl, f.lastSlash = true, true, false, false, false
				if f.depth == 1 && f.start < 0 {
					f.start = i
				}
			}
			continue
		}
		if f.quote != 0 {
			if c == f.quote {
				f.quote = 0
			}
			continue
		}
		if f.afterLT {
			f.afterLT = false
			switch c {
			case '/':
				f.endTag = true
				continue
			case '?', '!':
				f.decl = true
				continue
			}
		}
		switch c {
		case '"', '\'':
			f.quote = c
			f.lastSlash = false
		case '/':
			f.lastSlash = true
		case '>':
			f.inTag = false
			switch {
			case f.decl:
				if f.depth == 1 && f.start >= 0 {
					f.start = -1 // a declaration between stanzas is not one
				}
			case f.endTag:
				f.depth--
				if f.depth == 0 {
					f.closed = true
				}
				if f.depth == 1 {
					return f.take(i + 1)
				}
			case f.lastSlash:
				if f.depth == 1 {
					return f.take(i + 1)
				}
			default:
				f.depth++
				if f.depth == 1 {
					f.opened = true
				}
			}
		case ' ', '\t', '\r', '\n':
		default:
			f.lastSlash = false
		}
	}
	f.pos = len(b)
	return nil
}

func (f *framer) take(end int) []byte {
	el := f.buf[f.start:end]
	f.start = -1
	f.pos = end
	return el
}
