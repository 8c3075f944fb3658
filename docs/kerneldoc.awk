# SPDX-License-Identifier: MIT
# kerneldoc.awk - Doxygen's INPUT_FILTER for include/percpu.h.
#
# The header is documented in the kernel's kernel-doc style:
#
#   /**
#    * pcpu_alloc - allocate a per-CPU object.
#    * @size:  1 .. pcpu_max_alloc_size() bytes.
#    * ...  @size is ...
#    *   EINVAL  size or align out of range, ...
#    */
#
# Doxygen reads "/**" comments but not that syntax, so this rewrites, in
# the text Doxygen sees (the header itself is never touched):
#   "name - summary"       -> "\brief summary", and "\ingroup <page>" at the
#                             end of the comment ("\defgroup <page> <title>"
#                             the first time; docs/pages.txt says which page);
#   "@a:" / "@a, @b:"      -> "\param a" / "\param a,b" at a line's start;
#   "@a" elsewhere         -> "\p a";
#   "  EINVAL  text"       -> a definition list (the errno lists);
#   indented or column-aligned lines (examples, diagrams, usage tables)
#                          -> "\code" blocks, kept as they are laid out.
# Names docs/pages.txt lists that have no kernel-doc comment (typed macros,
# structs, enums, flags) are put on their page with the plain comment right
# above them (a struct's or enum's fields with their trailing comments).
# The comment that opens a part of the header named by "@section" in
# docs/pages.txt describes a page, and its usage lines ("NAME(args)   what")
# document those macros.  The header's opening comment becomes the page
# "percpu" (percpu(7)), with a SEE ALSO list of every page.
#
# Lines are kept one for one where possible, so that Doxygen's warnings
# name the header's line numbers.  POSIX awk (Debian's mawk is enough).
#
# Usage: awk -v pages=docs/pages.txt -f docs/kerneldoc.awk include/percpu.h

function trim(s) {
    sub(/^[ \t]+/, "", s)
    sub(/[ \t]+$/, "", s)
    return s
}

# The page that documents name (see docs/pages.txt), "" for none.
function page_of(name,   best, bl, g, p) {
    if (name in is_page)
        return name
    if (name in member)
        return member[name]
    best = ""
    bl = 0
    for (g in prefix) {
        p = substr(g, 1, length(g) - 1)
        if (substr(name, 1, length(p)) == p && length(p) > bl) {
            bl = length(p)
            best = prefix[g]
        }
    }
    return best
}

# A page title from a kernel-doc summary: up to its first full stop, colon
# or semicolon, without the "@" of references.
function short_title(s) {
    gsub(/@/, "", s)
    if (match(s, /[^. ][.:;]( |$)/))
        s = substr(s, 1, RSTART)
    return trim(s)
}

# "/** \defgroup ... */ " the first time a page is used, "" afterwards.
# The title: docs/pages.txt's, else the summary of the page's own comment,
# else the one given.
function group_def(page, title,   t) {
    if (page in defined)
        return ""
    defined[page] = 1
    order[++npages] = page
    if (page in page_title)
        t = page_title[page]
    else if (page in summary)
        t = summary[page]
    else
        t = title
    return "/** \\defgroup " page " " t " */ "
}

# kernel-doc references to "@name" as Doxygen's "\p name".
function refs(s,   out) {
    out = ""
    while (match(s, /@[A-Za-z_][A-Za-z0-9_]*/)) {
        out = out substr(s, 1, RSTART - 1) "\\p " substr(s, RSTART + 1, RLENGTH - 1)
        s = substr(s, RSTART + RLENGTH)
    }
    return out s
}

# The text of a comment line after its " *" (or its opener).
function text_of(s) {
    sub(/^[ \t]*(\/\*+|\*)/, "", s)
    return s
}

# Mark the lines of buf[1..n] that are laid out by hand: lines indented
# by four or more, or runs of two or more lines with a column gap.  Not
# parameter descriptions nor errno lists (kd: a kernel-doc comment).
# vopen[i]: "\code" goes after line i; vclose[i]: "\endcode" ends line i.
function verbatim(n, kd,   i, t, ctx, a, b, deep) {
    ctx = 0
    for (i = 1; i <= n; i++) {
        vopen[i] = 0
        vclose[i] = 0
        vin[i] = 0
        t = text_of(buf[i])
        sub(/\*\/[ \t]*$/, "", t)
        if (trim(t) == "") {
            ctx = 0
            cand[i] = 0
            continue
        }
        if (kd && t ~ /^[ \t]*@[A-Za-z_][A-Za-z0-9_]*(,[ \t]*@[A-Za-z_][A-Za-z0-9_]*)*:/)
            ctx = 1
        deep = (t ~ /^[ \t][ \t][ \t][ \t][ \t]+[^ \t]/)
        cand[i] = (i > 1 && !ctx && !(kd && kind[i] != "")) ? \
                  (deep ? 2 : (t ~ /[^ \t][ \t][ \t][ \t]+[^ \t]/)) : 0
    }
    i = 1
    while (i <= n) {
        if (!cand[i]) {
            i++
            continue
        }
        a = i
        while (i + 1 <= n && cand[i + 1])
            i++
        b = i
        if (b > a || cand[a] == 2) {
            vopen[a - 1] = 1
            vclose[b] = 1
            for (t = a; t <= b; t++)
                vin[t] = 1
        }
        i++
    }
}

# errno lists of a kernel-doc comment: kind[i] "first" or "item" for
# "  EINVAL  text", "cont" for its continuation lines, "end" added to the
# last line of a list.
function errno_lists(n,   i, inlist, lastl) {
    inlist = 0
    for (i = 1; i <= n; i++) {
        kind[i] = ""
        if (buf[i] ~ /^[ \t]*\*[ \t][ \t][ \t]?E[A-Z0-9]+[ \t][ \t]*/) {
            kind[i] = inlist ? "item" : "first"
            inlist = 1
            lastl = i
        } else if (inlist && buf[i] ~ /^[ \t]*\*[ \t][ \t][ \t][ \t]+[^ \t*]/) {
            kind[i] = "cont"
            lastl = i
        } else if (inlist) {
            kind[lastl] = kind[lastl] "end"
            inlist = 0
        }
    }
    if (inlist)
        kind[lastl] = kind[lastl] "end"
}

# One line of a kernel-doc comment's body, in Doxygen's terms.
function kd_line(s, k,   head, names, e, star) {
    # "@a:" or "@a, @b:" at the start: a parameter's description.
    if (match(s, /^[ \t]*[*]?[ \t]*@[A-Za-z_][A-Za-z0-9_]*(,[ \t]*@[A-Za-z_][A-Za-z0-9_]*)*:/)) {
        head = substr(s, 1, RLENGTH)
        names = head
        sub(/^[ \t]*[*]?[ \t]*/, "", names)
        sub(/:$/, "", names)
        gsub(/[ \t@]/, "", names)
        head = substr(head, 1, index(head, "@") - 1)
        return head "\\param " names " " refs(substr(s, RLENGTH + 1))
    }
    if (k ~ /^(first|item)/) {
        match(s, /^[ \t]*\*[ \t]+E[A-Z0-9]+[ \t]*/)
        star = index(s, "*")
        e = trim(substr(s, star + 1, RLENGTH - star))
        s = substr(s, 1, star) " " (k ~ /^item/ ? "</dd>" : "<dl>") "<dt>" e "</dt><dd>" \
            refs(substr(s, RLENGTH + 1))
    } else {
        s = refs(s)
    }
    if (k ~ /end$/)
        s = s "</dd></dl>"
    return s
}

# Print buf[1..n] as a Doxygen comment: pre before line 1, line 1's
# opener made "/**", kernel-doc rewriting if kd, "\code" blocks, and
# suffix (e.g. "\ingroup page") at the end of the comment.
function emit(n, pre, suffix, kd,   i, s, closing) {
    if (kd)
        errno_lists(n)
    else
        for (i = 1; i <= n; i++)
            kind[i] = ""
    verbatim(n, kd)
    for (i = 1; i <= n; i++) {
        s = buf[i]
        closing = (i == n)
        if (closing)
            sub(/[ \t]*\*\/[ \t]*$/, "", s)
        if (i == 1)
            sub(/\/\*+/, "/**", s)
        if (!vin[i])
            s = (kd && i > 1) ? kd_line(s, kind[i]) : refs(s)
        if (i == 1)
            s = pre s
        if (vclose[i])
            s = s " \\endcode"
        if (closing)
            s = s (suffix == "" ? "" : " " suffix) " */"
        if (vopen[i] && i == 1) {
            print s
            s = " * \\code"
        } else if (vopen[i]) {
            s = s " \\code"
        }
        print s
    }
    nbuf = 0
}

function flush_plain(   i) {
    for (i = 1; i <= nbuf; i++)
        print buf[i]
    nbuf = 0
    pending = 0
}

# The name a line defines, if it is "#define NAME", "struct NAME {",
# "enum NAME {", as pages.txt spells them (struct:NAME, enum:NAME).
function defined_name(s,   n) {
    if (match(s, /^#[ \t]*define[ \t]+[A-Za-z_][A-Za-z0-9_]*/)) {
        n = substr(s, RSTART, RLENGTH)
        sub(/^#[ \t]*define[ \t]+/, "", n)
        return n
    }
    if (match(s, /^(struct|enum)[ \t]+[A-Za-z_][A-Za-z0-9_]*[ \t]*\{/)) {
        n = substr(s, RSTART, RLENGTH)
        sub(/[ \t]*\{$/, "", n)
        sub(/[ \t]+/, ":", n)
        return n
    }
    return ""
}

# A "/**" comment is complete: kernel-doc ("name - summary") goes on its
# page; any other is left to Doxygen as it is.
function end_kdoc(   i, s, name, page, title) {
    i = (trim(buf[1]) == "/**") ? 2 : 1
    s = buf[i]
    if (i > nbuf || !match(s, /[A-Za-z_][A-Za-z0-9_]*(\(\))?[ \t]+-[ \t]+/)) {
        flush_plain()
        return
    }
    name = substr(s, RSTART, RLENGTH)
    sub(/(\(\))?[ \t]+-[ \t]+$/, "", name)
    title = substr(s, RSTART + RLENGTH)
    sub(/[ \t]*\*\/[ \t]*$/, "", title)
    page = page_of(name)
    if (page == "")
        page = name
    buf[i] = substr(s, 1, RSTART - 1) "\\brief " substr(s, RSTART + RLENGTH)
    emit(nbuf, group_def(page, short_title(title)), "\\ingroup " page, 1)
    doc_above = 1
}

# A plain comment is complete: the header's opening comment, a banner, a
# part's opening comment, a field's comment, or one that may document
# the line after it.
function end_plain(   i, t, text, page, nm) {
    if (first_comment) {
        first_comment = 0
        for (i = 1; i <= nbuf; i++)
            top[i] = buf[i]
        ntop = nbuf
        flush_plain()
        return
    }
    if (nbuf == 3 && buf[1] ~ /^\/\* -----/ && buf[3] ~ /-----.*\*\/[ \t]*$/) {
        t = buf[2]
        sub(/^[ \t]*\*[ \t]*/, "", t)
        section = trim(t)
        after_banner = 1
        flush_plain()
        return
    }
    if (after_banner && (section in section_page)) {
        after_banner = 0
        page = section_page[section]
        # Usage lines "NAME(args)...   what it does" document NAME.
        for (i = 2; i <= nbuf; i++) {
            t = trim(text_of(buf[i]))
            if (match(t, /^[A-Za-z_][A-Za-z0-9_]*\(/) && match(t, /[^ \t][ \t][ \t][ \t]+[^ \t]/)) {
                nm = substr(t, 1, index(t, "(") - 1)
                if (page_of(nm) == page)
                    usage[nm] = usage[nm] (nm in usage ? "; " : "") \
                        "<tt>" trim(substr(t, 1, RSTART)) "</tt> " trim(substr(t, RSTART + 1))
            }
        }
        if (page in defined) {
            buf[1] = "/** \\addtogroup " page
        } else {
            t = group_def(page, section)
            sub(/[ \t]*\*\/[ \t]*$/, "", t)
            buf[1] = t
        }
        emit(nbuf, "", "", 0)
        return
    }
    after_banner = 0
    if (in_doc_body != "") {
        emit(nbuf, "", "", 0)
        return
    }
    # Keep the text: a definition right below may use it.
    text = ""
    for (i = 1; i <= nbuf; i++) {
        t = text_of(buf[i])
        sub(/\*\/[ \t]*$/, "", t)
        text = text " " trim(t)
    }
    lastdoc_text = refs(trim(text))
    pending = 1
}

BEGIN {
    if (pages == "") {
        print "kerneldoc.awk: -v pages=docs/pages.txt is needed" > "/dev/stderr"
        exit 2
    }
    while ((getline line < pages) > 0) {
        sub(/#.*/, "", line)
        line = trim(line)
        if (line == "")
            continue
        if (line ~ /^@section[ \t]/) {
            sub(/^@section[ \t]+/, "", line)
            eq = index(line, "=")
            section_page[trim(substr(line, 1, eq - 1))] = trim(substr(line, eq + 1))
            continue
        }
        title = ""
        if ((t = index(line, " -- ")) > 0) {
            title = trim(substr(line, t + 4))
            line = trim(substr(line, 1, t - 1))
        }
        n = split(line, f, /[ \t]+/)
        is_page[f[1]] = 1
        if (title != "")
            page_title[f[1]] = title
        for (k = 2; k <= n; k++) {
            if (f[k] ~ /\*$/)
                prefix[f[k]] = f[1]
            else
                member[f[k]] = f[1]
        }
    }
    close(pages)

    # First pass: the summary of every kernel-doc comment, so that a page
    # that first shows up under another of its names has its own title.
    inname = ""
    prev = ""
    while ((getline line < ARGV[1]) > 0) {
        l = line
        if (inname != "") {
            # The summary goes on to a blank line, a parameter or the end.
            end = index(l, "*/")
            if (end)
                l = substr(l, 1, end - 1)
            sub(/^[ \t]*\*[ \t]*/, "", l)
            if (trim(l) == "" || l ~ /^@/) {
                inname = ""
            } else {
                sm = sm " " trim(l)
                summary[inname] = short_title(sm)
            }
            if (end)
                inname = ""
        }
        if (prev ~ /^[ \t]*\/\*\*[ \t]*$/ || l ~ /^[ \t]*\/\*\*[ \t]/) {
            sub(/^[ \t]*(\/\*\*|\*)[ \t]*/, "", l)
            if (match(l, /^[A-Za-z_][A-Za-z0-9_]*(\(\))?[ \t]+-[ \t]+/)) {
                nm = substr(l, 1, RLENGTH)
                sub(/(\(\))?[ \t]+-[ \t]+$/, "", nm)
                sm = substr(l, RLENGTH + 1)
                inname = (sm ~ /\*\//) ? "" : nm
                sub(/[ \t]*\*\/[ \t]*$/, "", sm)
                summary[nm] = short_title(sm)
            }
        }
        prev = line
    }
    close(ARGV[1])

    state = "code"      # code, kdoc, plain: where the current line is
    nbuf = 0            # the comment being buffered, buf[1..nbuf]
    pending = 0         # a plain comment waits for the line after it
    doc_above = 0       # the line before was a documenting comment
    section = ""        # the banner title of the part of the header
    after_banner = 0    # no code since that banner yet
    in_doc_body = ""    # inside a struct/enum listed in pages.txt
    first_comment = 1
    ncond = 0           # #if nesting; cond[i] 1: C++ only, -1: C only
}

{
    line = $0

    # The license line above the opening comment is not that comment.
    if (FNR == 1 && line ~ /SPDX-License-Identifier:/) {
        print line
        next
    }

    # What only C++ sees is left alone: Doxygen reads the header as C, so
    # documentation in there (and groups defined there) would be lost.
    if (state == "code" && line ~ /^#[ \t]*if/) {
        c = 0
        if (line ~ /^#[ \t]*ifdef[ \t]+__cplusplus/)
            c = 1
        else if (line ~ /^#[ \t]*ifndef[ \t]+__cplusplus/)
            c = -1
        cond[++ncond] = c
    } else if (state == "code" && line ~ /^#[ \t]*(else|elif)/ && ncond > 0) {
        cond[ncond] = -cond[ncond]
    } else if (state == "code" && line ~ /^#[ \t]*endif/ && ncond > 0) {
        ncond--
    }
    in_cxx = 0
    for (k = 1; k <= ncond; k++)
        if (cond[k] == 1)
            in_cxx = 1
    if (in_cxx && state == "code") {
        if (pending)
            flush_plain()
        print line
        next
    }

    # Inside a comment being buffered.
    if (state != "code") {
        buf[++nbuf] = line
        if (index(line, "*/")) {
            if (state == "kdoc")
                end_kdoc()
            else
                end_plain()
            state = "code"
        }
        next
    }

    # A plain comment waiting for the line after it: does it document what
    # that line defines?  (Not a #define with a trailing comment of its own.)
    if (pending) {
        what = defined_name(line)
        page = (what == "") ? "" : page_of(what)
        pending = 0
        if (page != "" && !(what !~ /:/ && line ~ /[^ \t].*\/\*/)) {
            emit(nbuf, group_def(page, what), "\\ingroup " page, 0)
            doc_above = 1
        } else {
            flush_plain()
        }
    }

    # A comment that starts a line.
    if (line ~ /^[ \t]*\/\*/) {
        nbuf = 0
        buf[++nbuf] = line
        state = (line ~ /^[ \t]*\/\*\*([ \t]|$)/) ? "kdoc" : "plain"
        if (index(substr(line, index(line, "/*") + 2), "*/")) {
            if (state == "kdoc")
                end_kdoc()
            else
                end_plain()
            state = "code"
        }
        next
    }

    # Code.  In a documented struct or enum, trailing comments document
    # the fields.
    if (in_doc_body != "") {
        if (line ~ /^}/)
            in_doc_body = ""
        else if (line ~ /[^ \t].*\/\*/ && line !~ /\/\*\*/)
            sub(/\/\*/, "/**<", line)
    }
    what = defined_name(line)
    page = (what == "") ? "" : page_of(what)
    if (page != "" && what ~ /:/)
        in_doc_body = page
    if (page != "" && what !~ /:/ && line ~ /\/\*/) {
        # A listed #define with its own trailing comment.
        sub(/\/\*/, "/**<", line)
        sub(/\*\/[ \t]*$/, "\\ingroup " page " */", line)
        print group_def(page, what) line
    } else if (page != "" && !doc_above) {
        # Listed, without a comment of its own: on its page all the same,
        # with its usage line, or the comment of the definition just above
        # (PCPU_THIS_PTR below PCPU_PTR), if any.
        text = (what in usage) ? usage[what] : (what ~ /:/ ? "" : lastdoc_text)
        print group_def(page, what) "/** " text " \\ingroup " page " */"
        print line
    } else {
        print line
    }
    if (trim(line) != "")
        after_banner = 0
    doc_above = 0
    if (trim(line) != "" && !(page != "" && what !~ /:/))
        lastdoc_text = ""
}

END {
    if (pending)
        flush_plain()
    # percpu(7): the header's opening comment (" * percpu.h - title"), and
    # every page.
    if (ntop > 2) {
        t = text_of(top[2])
        name = trim(t)
        sub(/[ \t]+-.*/, "", name)
        sub(/\.h$/, "", name)
        sub(/^[^-]*-[ \t]*/, "", t)
        sub(/[ \t]*\(.*$/, "", t)
        sub(/\.$/, "", t)
        print "/** \\page " name " " trim(t)
        print " * \\section description DESCRIPTION"
        nbuf = 0
        for (i = 3; i <= ntop; i++)
            buf[++nbuf] = top[i]
        see = ""
        for (i = 1; i <= npages; i++)
            see = see (i > 1 ? ", " : "") order[i] "(3)"
        emit(nbuf, "", "\n * \\section seealso SEE ALSO\n * " see ".", 0)
    }
}
