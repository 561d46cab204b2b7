#!/usr/bin/env python3
"""Lists the function definitions of C++ files with their length in lines (first line of the
signature to the closing brace, both included), to find the functions to split into named
steps: `tests/tools/function_lengths.py --over=100 src/runtime/*.cc`.

A definition is a parenthesised signature followed by '{' whose enclosing scopes are all
namespaces or classes; its end is the brace that closes it. Comments, strings, raw strings,
character literals and digit separators are skipped when matching braces. A heuristic, not a
parser: a macro that opens a brace can confuse it."""
import bisect
import re
import sys

def strip(src):
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith('//', i):
            j = src.find('\n', i); j = n if j < 0 else j
            out.append(' ' * (j - i)); i = j
        elif src.startswith('/*', i):
            j = src.find('*/', i + 2); j = n if j < 0 else j + 2
            out.append(''.join(ch if ch == '\n' else ' ' for ch in src[i:j])); i = j
        elif src.startswith('R"', i):
            m = re.match(r'R"([^(]*)\(', src[i:])
            end = src.find(')' + m.group(1) + '"', i) + len(m.group(1)) + 2
            out.append(''.join(ch if ch == '\n' else ' ' for ch in src[i:end])); i = end
        elif c == "'" and i > 0 and src[i - 1].isalnum():
            out.append(c); i += 1  # digit separator (60'000)
        elif c in '"\'':
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == '\\' else 1
            out.append(c + ' ' * (j - i - 1) + c); i = j + 1
        else:
            out.append(c); i += 1
    return ''.join(out)

def functions(path):
    text = strip(open(path).read())
    lines = text.split('\n')
    res = []
    # A '{' opens a function body when the text before it (since the last ';', '{' or '}')
    # holds a parenthesised signature and every enclosing scope is a namespace or a class.
    depth_kind = []  # stack of 'ns', 'class', 'fn', 'block'
    starts = [0]
    for l in lines: starts.append(starts[-1] + len(l) + 1)
    def line_of(p):
        return bisect.bisect_right(starts, p)
    stmt_start = 0
    open_fn = []
    for p, c in enumerate(text):
        if c == '{':
            head = text[stmt_start:p]
            kind = 'block'
            outer = all(k in ('ns', 'class') for k in depth_kind)
            h = ' '.join(head.split())
            if re.search(r'\bnamespace\b', h) or h.startswith('extern "'):
                kind = 'ns'
            elif re.search(r'\b(class|struct|union|enum)\b[^()]*$', h) and outer:
                kind = 'class'
            elif outer and ')' in h and not re.search(r'=\s*$', h) and '(' in h:
                kind = 'fn'
                name_m = re.search(r'([~\w:]+(?:operator\S*)?)\s*\(', h)
                open_fn.append((name_m.group(1) if name_m else h[:40], line_of(stmt_start + len(head) - len(head.lstrip())), len(depth_kind)))
            depth_kind.append(kind)
            stmt_start = p + 1
        elif c == '}':
            if depth_kind:
                k = depth_kind.pop()
                if k == 'fn':
                    name, l0, d = open_fn.pop()
                    res.append((name, l0, line_of(p)))
            stmt_start = p + 1
        elif c == ';':
            stmt_start = p + 1
    return res

if __name__ == '__main__':
    limit = 0
    args = sys.argv[1:]
    if args and args[0].startswith('--over='):
        limit = int(args[0][7:]); args = args[1:]
    for path in args:
        for name, a, b in functions(path):
            n = b - a + 1
            if n > limit:
                print(f'{n:5d}  {path}:{a}  {name}')
