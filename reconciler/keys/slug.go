package keys

import (
	"strings"
	"unicode"
)

// Slug turns s into lowercase words of [a-z0-9] joined by single hyphens, with
// no leading or trailing hyphen, so that branch names such as
// "Feature/Login_Page" become usable key fragments ("feature-login-page").
//
// Non-ASCII is handled so that the same input always yields the same slug and
// the common European spellings stay readable:
//   - Latin letters with diacritics and the usual ligatures are transliterated
//     ("Crème brûlée" → "creme-brulee", "Straße" → "strasse", "Æsir" → "aesir").
//   - Other letters and combining marks (Cyrillic, CJK, …) are dropped without
//     leaving a separator, since there is no trivial transliteration for them;
//     a name made only of such letters slugs to "".
//   - Everything else outside [a-z0-9] (punctuation, symbols, spaces,
//     non-ASCII digits) separates words.
//
// Slug is idempotent: Slug(Slug(s)) == Slug(s).
func Slug(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	pendingHyphen := false
	write := func(word string) {
		if pendingHyphen && b.Len() > 0 {
			b.WriteByte('-')
		}
		pendingHyphen = false
		b.WriteString(word)
	}
	for _, r := range s {
		r = unicode.ToLower(r)
		switch {
		case 'a' <= r && r <= 'z', '0' <= r && r <= '9':
			write(string(r))
		case r < 0x80:
			pendingHyphen = true
		default:
			if latin, ok := transliterate(r); ok {
				write(latin)
				continue
			}
			if unicode.IsLetter(r) || unicode.IsMark(r) {
				continue
			}
			pendingHyphen = true
		}
	}
	return b.String()
}

// transliterate maps a lowercase Latin-1 Supplement or Latin Extended-A letter
// to its plain ASCII spelling. It is deliberately a switch rather than a table
// so that it holds no package state.
func transliterate(r rune) (string, bool) {
	switch r {
	case 'à', 'á', 'â', 'ã', 'ä', 'å', 'ā', 'ă', 'ą':
		return "a", true
	case 'æ':
		return "ae", true
	case 'ç', 'ć', 'ĉ', 'ċ', 'č':
		return "c", true
	case 'ď', 'đ', 'ð':
		return "d", true
	case 'è', 'é', 'ê', 'ë', 'ē', 'ĕ', 'ė', 'ę', 'ě':
		return "e", true
	case 'ĝ', 'ğ', 'ġ', 'ģ':
		return "g", true
	case 'ĥ', 'ħ':
		return "h", true
	case 'ì', 'í', 'î', 'ï', 'ĩ', 'ī', 'ĭ', 'į', 'ı':
		return "i", true
	case 'ĳ':
		return "ij", true
	case 'ĵ':
		return "j", true
	case 'ķ', 'ĸ':
		return "k", true
	case 'ĺ', 'ļ', 'ľ', 'ŀ', 'ł':
		return "l", true
	case 'ñ', 'ń', 'ņ', 'ň', 'ŉ', 'ŋ':
		return "n", true
	case 'ò', 'ó', 'ô', 'õ', 'ö', 'ø', 'ō', 'ŏ', 'ő':
		return "o", true
	case 'œ':
		return "oe", true
	case 'ŕ', 'ŗ', 'ř':
		return "r", true
	case 'ś', 'ŝ', 'ş', 'š', 'ſ':
		return "s", true
	case 'ß':
		return "ss", true
	case 'ţ', 'ť', 'ŧ':
		return "t", true
	case 'þ':
		return "th", true
	case 'ù', 'ú', 'û', 'ü', 'ũ', 'ū', 'ŭ', 'ů', 'ű', 'ų':
		return "u", true
	case 'ŵ':
		return "w", true
	case 'ý', 'ÿ', 'ŷ':
		return "y", true
	case 'ź', 'ż', 'ž':
		return "z", true
	}
	return "", false
}
