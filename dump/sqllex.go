package dump

import (
	"fmt"
	"strings"
)

// tokKind is the kind of one SQL token.
type tokKind byte

const (
	tokWord    tokKind = iota // identifier or keyword (backquotes removed)
	tokString                 // quoted string, unescaped
	tokNumber                 // numeric literal
	tokUserVar                // @name
	tokSysVar                 // @@[scope.]name
	tokPunct                  // one of ( ) , = ; * . or :=
)

// token is one SQL token; Text keeps the source text (for column names).
type token struct {
	Kind tokKind
	Val  string // word/var name (as written), string value, number text, punctuation
	// Scope of a system variable: "global", "session" or "" (none given).
	Scope string
	Text  string
}

// is reports whether t is the word w (case-insensitive).
func (t token) is(w string) bool { return t.Kind == tokWord && strings.EqualFold(t.Val, w) }

// lex splits a statement into tokens. Comments (/* */, -- , #) are dropped;
// /*! versioned comments */ are treated as their content, as servers do.
func lex(s string) ([]token, error) {
	var out []token
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f':
			i++
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			if i+2 < len(s) && s[i+2] == '!' {
				j := i + 3
				for j < len(s) && s[j] >= '0' && s[j] <= '9' {
					j++
				}
				end := strings.Index(s[j:], "*/")
				if end < 0 {
					return nil, fmt.Errorf("unterminated comment")
				}
				inner, err := lex(s[j : j+end])
				if err != nil {
					return nil, err
				}
				out = append(out, inner...)
				i = j + end + 2
				continue
			}
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("unterminated comment")
			}
			i += end + 4
		case c == '#' || (c == '-' && i+2 < len(s) && s[i+1] == '-' && (s[i+2] == ' ' || s[i+2] == '\t')):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '\'' || c == '"':
			v, n, err := lexString(s[i:])
			if err != nil {
				return nil, err
			}
			out = append(out, token{Kind: tokString, Val: v, Text: s[i : i+n]})
			i += n
		case c == '`':
			end := strings.IndexByte(s[i+1:], '`')
			if end < 0 {
				return nil, fmt.Errorf("unterminated identifier")
			}
			out = append(out, token{Kind: tokWord, Val: s[i+1 : i+1+end], Text: s[i : i+2+end]})
			i += end + 2
		case c == '@':
			j := i + 1
			sys := j < len(s) && s[j] == '@'
			if sys {
				j++
			}
			k := j
			if k < len(s) && (s[k] == '\'' || s[k] == '"' || s[k] == '`') && !sys {
				// @'name' form
				v, n, err := lexString(strings.Replace(s[k:k+1], "`", "'", 1) + s[k+1:])
				if err != nil {
					return nil, err
				}
				out = append(out, token{Kind: tokUserVar, Val: v, Text: s[i : k+n]})
				i = k + n
				continue
			}
			for k < len(s) && (isIdent(s[k]) || s[k] == '.') {
				k++
			}
			name := s[j:k]
			if name == "" {
				return nil, fmt.Errorf("lone @ at offset %d", i)
			}
			t := token{Kind: tokUserVar, Val: name, Text: s[i:k]}
			if sys {
				t.Kind = tokSysVar
				if scope, rest, ok := strings.Cut(name, "."); ok {
					switch strings.ToLower(scope) {
					case "global", "session", "local":
						t.Scope = strings.ToLower(scope)
						if t.Scope == "local" {
							t.Scope = "session"
						}
						name = rest
					}
				}
				t.Val = name
			}
			out = append(out, t)
			i = k
		case c >= '0' && c <= '9' || (c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9'):
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.' || s[j] == 'e' || s[j] == 'E' ||
				((s[j] == '+' || s[j] == '-') && j > i && (s[j-1] == 'e' || s[j-1] == 'E'))) {
				j++
			}
			out = append(out, token{Kind: tokNumber, Val: s[i:j], Text: s[i:j]})
			i = j
		case isIdent(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			out = append(out, token{Kind: tokWord, Val: s[i:j], Text: s[i:j]})
			i = j
		case c == ':' && i+1 < len(s) && s[i+1] == '=':
			out = append(out, token{Kind: tokPunct, Val: "=", Text: ":="})
			i += 2
		case strings.IndexByte("(),=;*.-+<>!%", c) >= 0:
			out = append(out, token{Kind: tokPunct, Val: s[i : i+1], Text: s[i : i+1]})
			i++
		default:
			return nil, fmt.Errorf("unexpected character %q at offset %d", c, i)
		}
	}
	for len(out) > 0 && out[len(out)-1].Kind == tokPunct && out[len(out)-1].Val == ";" {
		out = out[:len(out)-1]
	}
	return out, nil
}

func isIdent(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// lexString reads a quoted string at the start of s and returns its value
// and the number of bytes consumed. Backslash escapes and doubled quotes
// are handled as MySQL does by default.
func lexString(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s):
			i++
			switch s[i] {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '0':
				b.WriteByte(0)
			case 'Z':
				b.WriteByte(26)
			default:
				b.WriteByte(s[i])
			}
		case c == q && i+1 < len(s) && s[i+1] == q:
			b.WriteByte(q)
			i++
		case c == q:
			return b.String(), i + 1, nil
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}
