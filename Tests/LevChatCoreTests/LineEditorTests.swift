import Testing
@testable import LevChatCore

@Suite struct KeyDecoderTests {
    func keys(_ bytes: [UInt8]) -> [EditorKey] {
        var decoder = KeyDecoder()
        return decoder.feed(bytes)
    }

    @Test func textControlKeysAndEscapeSequences() {
        #expect(keys(Array("hi".utf8)) == [.text("hi")])
        #expect(keys([0x01, 0x05, 0x0B, 0x15, 0x17, 0x03, 0x04, 0x09, 0x0D, 0x7F, 0x0C]) ==
                [.home, .end, .killToEnd, .killToStart, .deleteWordBack, .interrupt, .endOfInput, .tab, .enter, .backspace, .redraw])
        #expect(keys(Array("\u{1B}[A\u{1B}[B\u{1B}[C\u{1B}[D".utf8)) == [.up, .down, .right, .left])
        #expect(keys(Array("\u{1B}OH\u{1B}OF\u{1B}[H\u{1B}[F\u{1B}[1~\u{1B}[4~\u{1B}[3~".utf8)) == [.home, .end, .home, .end, .home, .end, .delete])
        #expect(keys(Array("a\u{1B}[Cb".utf8)) == [.text("a"), .right, .text("b")])
    }

    @Test func sequencesAndUTF8SplitAcrossReadsAreKeptUntilWhole() {
        var decoder = KeyDecoder()
        #expect(decoder.feed([0x1B]) == [])
        #expect(decoder.feed([UInt8(ascii: "[")]) == [])
        #expect(decoder.feed([UInt8(ascii: "D")]) == [.left])
        let emoji = Array("\u{1F600}".utf8)
        #expect(decoder.feed(Array(emoji.prefix(2))) == [])
        #expect(decoder.feed(Array(emoji.dropFirst(2))) == [.text("\u{1F600}")])
    }

    @Test func unknownSequencesAndInvalidBytesShowNothing() {
        #expect(keys(Array("\u{1B}[15~x".utf8)) == [.text("x")])  // F5: unknown, dropped
        #expect(keys([0x1B, UInt8(ascii: "a")]) == [.text("a")])  // Alt-a: the ESC is dropped
        #expect(keys([0xFF, 0x80, UInt8(ascii: "o"), 0xC3, 0x28]) == [.text("o(")])
    }
}

@Suite struct LineEditorTests {
    func typed(_ text: String) -> LineEditor {
        var editor = LineEditor()
        _ = editor.handle(.text(text))
        return editor
    }

    @Test func editingKeysMoveAndCutByGraphemeCluster() {
        var editor = typed("hello wor")
        #expect(editor.cursor == 9)
        _ = editor.handle(.home)
        _ = editor.handle(.right)
        _ = editor.handle(.killToEnd)
        #expect(editor.text == "h")
        editor = typed("say \u{1F44B}\u{1F3FD} ok")  // a waving hand with a skin tone is one cluster
        _ = editor.handle(.left); _ = editor.handle(.left); _ = editor.handle(.left)
        _ = editor.handle(.backspace)
        #expect(editor.text == "say  ok")
        editor = typed("one two  ")
        _ = editor.handle(.deleteWordBack)
        #expect(editor.text == "one ")
        _ = editor.handle(.killToStart)
        #expect(editor.text == "" && editor.cursor == 0)
        #expect(editor.handle(.backspace) == .none)
    }

    @Test func enterSubmitsAndHistoryRecallsWithTheDraftKept() {
        var editor = LineEditor()
        _ = editor.handle(.text("first"))
        #expect(editor.handle(.enter) == .submit("first"))
        _ = editor.handle(.text("second"))
        #expect(editor.handle(.enter) == .submit("second"))
        _ = editor.handle(.text("draft"))
        _ = editor.handle(.up)
        #expect(editor.text == "second")
        _ = editor.handle(.up)
        #expect(editor.text == "first")
        #expect(editor.handle(.up) == .none)
        _ = editor.handle(.down); _ = editor.handle(.down)
        #expect(editor.text == "draft")
    }

    @Test func ctrlDLeavesOnlyOnAnEmptyLine() {
        var editor = typed("x")
        #expect(editor.handle(.endOfInput) == .none)
        _ = editor.handle(.backspace)
        #expect(editor.handle(.endOfInput) == .endOfInput)
        #expect(editor.handle(.interrupt) == .interrupt)
    }

    /// Ctrl-Z is a key of its own (the screen says the chat is not stopped) and leaves the line
    /// as it was, cursor and all.
    @Test func ctrlZIsAKeyThatKeepsTheLine() {
        var decoder = KeyDecoder()
        #expect(decoder.feed([0x68, 0x69, 0x1A, 0x21]) == [.text("hi"), .suspend, .text("!")])
        var editor = typed("half typed")
        _ = editor.handle(.left)
        #expect(editor.handle(.suspend) == .none)
        #expect(editor.text == "half typed" && editor.cursor == 9)
    }

    @Test func tabCompletesNamesAndCommands() {
        let words = ["alice", "alfred", "bob", "/who", "/quit", "/help"]
        var editor = typed("bo")
        _ = editor.handle(.tab, completions: words)
        #expect(editor.text == "bob: ")
        editor = typed("hi al")
        _ = editor.handle(.tab, completions: words)
        #expect(editor.text == "hi al")  // alice and alfred agree on "al" only
        _ = editor.handle(.text("i"))
        _ = editor.handle(.tab, completions: words)
        #expect(editor.text == "hi alice ")
        editor = typed("/w")
        _ = editor.handle(.tab, completions: words)
        #expect(editor.text == "/who ")
        editor = typed("see /w")
        #expect(editor.handle(.tab, completions: words) == .none)  // commands only at the start
    }

    @Test func widthsCountColumnsNotBytes() {
        #expect(DisplayWidth.of("abc") == 3)
        #expect(DisplayWidth.of("\u{1F600}") == 2)
        #expect(DisplayWidth.of("\u{1F44B}\u{1F3FD}") == 2)
        #expect(DisplayWidth.of("\u{4F60}\u{597D}") == 4)
        #expect(DisplayWidth.of("e\u{301}") == 1)
        #expect(DisplayWidth.of("\u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}") == 2)
    }

    @Test func aLongLineScrollsSoTheCursorStaysVisible() {
        let editor = typed(String(repeating: "x", count: 50) + "\u{4F60}")
        let (visible, column) = editor.render(prompt: "[bob] ", columns: 30)
        #expect(DisplayWidth.of("[bob] " + visible) < 30)
        #expect(visible.hasSuffix("\u{4F60}"))
        #expect(column == 6 + DisplayWidth.of(visible))
        var start = editor
        _ = start.handle(.home)
        let (head, headColumn) = start.render(prompt: "[bob] ", columns: 30)
        #expect(head.hasPrefix("xxx") && headColumn == 6)
    }

    /// After `/send `, Tab completes a path from what `paths` lists: fully (a space after a file,
    /// none after a folder), as far as the candidates agree, escaped as a shell user types it.
    @Test func tabCompletesAPathAfterSend() {
        let disk = ["report.pdf", "reports/", "my report.pdf", "Documents/", "Documents/cv.pdf", "Documents/cover.txt"]
        let paths: (String) -> [String] = { typed in disk.filter { $0.hasPrefix(typed) && !$0.dropFirst(typed.count).dropLast().contains("/") } }
        func tab(_ text: String) -> String {
            var editor = typed(text)
            _ = editor.handle(.tab, completions: ["/send", "alice"], paths: paths)
            return editor.text
        }
        #expect(tab("/send Doc") == "/send Documents/")
        #expect(tab("/send Documents/cv") == "/send Documents/cv.pdf ")
        #expect(tab("/send Documents/c") == "/send Documents/c")  // cv.pdf and cover.txt agree on nothing more
        #expect(tab("/send my") == #"/send my\ report.pdf "#)
        #expect(tab(#"/send my\ r"#) == #"/send my\ report.pdf "#)
        #expect(tab("/send rep") == "/send report")  // report.pdf and reports/ agree on "report"
        #expect(tab("/send zz") == "/send zz")
        // After the path, the member it goes to.
        #expect(tab(#"/send my\ report.pdf al"#) == #"/send my\ report.pdf alice "#)
        #expect(tab(#"/send "my report.pdf" al"#) == #"/send "my report.pdf" alice "#)
        #expect(tab("/send report.pdf zz") == "/send report.pdf zz")
        // A name with a space goes in as one shell word, so the line still parses.
        var named = typed("/send report.pdf bo")
        _ = named.handle(.tab, completions: ["/send", "alice", "bob smith"], paths: paths)
        #expect(named.text == #"/send report.pdf bob\ smith "#)
        #expect(InputLine(parsing: named.text) == .send(path: "report.pdf", to: "bob smith"))
        var partly = typed("/send report.pdf b")
        _ = partly.handle(.tab, completions: ["bob smith", "bob smithers"], paths: paths)
        #expect(partly.text == #"/send report.pdf bob\ smith"#)
        var midLine = typed("thanks bo")
        _ = midLine.handle(.tab, completions: ["bob smith"], paths: paths)
        #expect(midLine.text == "thanks bob smith ")  // elsewhere, as it is
        #expect(tab(#"/send "my rep"#) == #"/send "my rep"#)  // inside quotes: still the path
        // Elsewhere Tab completes names and commands as before.
        #expect(tab("al") == "alice: ")
        #expect(tab("/se") == "/send ")
    }

}
