import LevChatCore
import Synchronization

/// A transfer's status row: what moves (`⇣ report.pdf`, `⇡ report.pdf to bob`), then how far
/// (`  40 %  1.0 MB of 2.4 MB  12.3 MB/s  0:12 left`), kept apart so that a narrow screen cuts the
/// name, not the figures (`TerminalScreen.fit`).
struct StatusRow: Sendable, Equatable {
    var head: ScreenText
    var tail: ScreenText
    /// The fewest columns the name keeps before the figures are cut instead.
    static let shortestHead = 8
}

/// The interactive screen (Docs/CLI.md, "The terminal chat"): chat lines scroll above; at the
/// bottom stay this peer's own lines on their way to the host, dimmed, and the input line with its
/// cursor. Every change erases that bottom area, prints what is new above it and draws it again,
/// so an incoming line never cuts into what the user is typing.
public final class TerminalScreen: Sendable {
    struct Pending {
        var id: MessageID
        var text: ScreenText
    }

    struct State {
        var editor = LineEditor()
        var name: String
        var columns: Int
        var rows: Int
        var pending: [Pending] = []
        /// Member names, for Tab.
        var names: [String] = []
        /// What is on the screen now: the widths of the pending rows drawn above the input row, and
        /// the cursor's column on the input row.
        var drawnPendingWidths: [Int] = []
        /// Transfers under way, a status row each above the pending rows, by offer id.
        var status: [(id: Int, row: StatusRow)] = []
        var drawnCursorColumn = 0
        var open = true
    }

    private let state: Mutex<State>
    private let writer: OutputWriter
    private let colors: Bool

    init(name: String, columns: Int, rows: Int = 24, colors: Bool, writer: OutputWriter) {
        state = Mutex(State(name: name, columns: max(columns, 8), rows: max(rows, 1)))
        self.colors = colors
        self.writer = writer
    }

    /// The first draw of the input line.
    func start() {
        state.withLock { state in writer.write(1, draw(&state)) }
    }

    /// Prints `text` (one or more lines) above the bottom area; `fd` 2 for diagnostics.
    /// Returns false when the screen is closed (the caller prints as usual).
    func printAbove(_ text: ScreenText, fd: Int32 = 1, bell: Bool = false) -> Bool {
        state.withLock { state in
            guard state.open else { return false }
            if fd == 1 {
                writer.write(1, erase(state) + text.rendered + "\n" + (bell ? "\u{07}" : "") + draw(&state))
            } else {
                writer.write(1, erase(state))
                writer.write(fd, text.rendered + "\n")
                writer.write(1, draw(&state))
            }
            return true
        }
    }

    /// A transfer's status row (nil removes it); the caller redraws it at most 10 times a second.
    func setStatus(_ id: Int, _ row: StatusRow?) {
        state.withLock { state in
            guard state.open else { return }
            let before = erase(state)
            state.status.removeAll { $0.id == id }
            if let row {
                state.status.append((id, row))
                state.status.sort { $0.id < $1.id }
            }
            writer.write(1, before + draw(&state))
        }
    }

    /// One of this peer's lines, sent but not yet echoed by the host.
    func addPending(_ id: MessageID, text: ScreenText) {
        state.withLock { state in
            guard state.open else { return }
            let before = erase(state)
            state.pending.append(Pending(id: id, text: text))
            writer.write(1, before + draw(&state))
        }
    }

    /// The host's echo of a pending line: the pending copy goes, the room's line is printed.
    /// False when `id` was not pending here.
    func confirm(_ id: MessageID, line: ScreenText, bell: Bool) -> Bool {
        state.withLock { state in
            guard state.open, let index = state.pending.firstIndex(where: { $0.id == id }) else { return false }
            let before = erase(state)
            state.pending.remove(at: index)
            writer.write(1, before + line.rendered + "\n" + (bell ? "\u{07}" : "") + draw(&state))
            return true
        }
    }

    func setName(_ name: String) { update { $0.name = name } }
    /// The member names Tab completes, as the room changes. A completion is drawn on the input
    /// line, so a name that would need escaping is never offered (members refuse such names).
    func updateNames(_ change: ([String]) -> [String]) {
        state.withLock { $0.names = change($0.names).filter { ScreenText(escaping: $0).rendered == $0 } }
    }
    /// SIGWINCH: the bottom area is drawn again at the new width. Terminals that reflow (tmux,
    /// VTE, kitty, Konsole) re-wrap what was drawn at the old width when it narrows; `erase`
    /// counts the rows that makes, so the old input line does not linger above the new one.
    func resize(columns: Int, rows: Int) {
        state.withLock { state in
            guard state.open else { return }
            state.columns = max(columns, 8)
            state.rows = max(rows, 1)
            writer.write(1, erase(state) + draw(&state))
        }
    }

    /// A key from the terminal: the editor changes and the input row is drawn again.
    func handle(_ key: EditorKey) -> LineEditor.Outcome {
        state.withLock { state in
            var key = key
            if case .text(let typed) = key {
                // Control and bidi characters never reach the line, so what is drawn is what is sent.
                var kept = String.UnicodeScalarView()
                kept.append(contentsOf: typed.unicodeScalars.filter { !DisplayText.isUnsafe($0) })
                key = .text(String(kept))
            }
            let completions = InputLine.commands + state.names
            let outcome = state.editor.handle(key, completions: completions, paths: PathCompletion.candidates)
            guard state.open else { return outcome }
            if key == .redraw {
                // Ctrl-L: a clean screen with the bottom area at its top.
                writer.write(1, "\u{1B}[H\u{1B}[2J" + draw(&state))  // the screen goes to the history: wanted here
            } else if key == .suspend {
                // A user who presses Ctrl-Z believes the shell is back and types to it: here what
                // they type would go to the room (a stopped peer would drop out of it instead).
                writer.write(1, erase(state) + TerminalScreen.suspendNotice.rendered + "\n" + draw(&state))
            } else if outcome != .none {
                writer.write(1, erase(state) + draw(&state))
            }
            return outcome
        }
    }

    /// Said on Ctrl-Z (Docs/CLI.md, "The terminal chat").
    static let suspendNotice: ScreenText = "* Ctrl-Z does not stop the chat here (a stopped peer drops out of the room); what you type still goes to the room. Ctrl-C or /quit leaves."

    /// The end of the interactive screen: the bottom area goes, and own lines no host ever echoed
    /// are printed as not sent. Later output is plain lines.
    func close() {
        state.withLock { state in
            guard state.open else { return }
            var out = erase(state)
            for line in state.pending {
                out += paint("[not sent]", "31") + " " + line.text.rendered + "\n"
            }
            state.open = false
            writer.write(1, out)
        }
    }

    private func update(_ change: (inout State) -> Void) {
        state.withLock { state in
            let before = erase(state)
            change(&state)
            guard state.open else { return }
            writer.write(1, before + draw(&state))
        }
    }

    /// From the cursor back to the top of the bottom area, and clear to the end of the screen.
    /// Everything was drawn narrower than the screen, so each pending line is one row and the
    /// cursor is on the input row, unless the screen has since narrowed (`resize`).
    private func erase(_ state: State) -> String {
        let columns = state.columns
        let up = state.drawnPendingWidths.reduce(0) { $0 + (max($1, 1) + columns - 1) / columns } + state.drawnCursorColumn / columns
        // Clear the top row of the area, then everything below it, then come back. Not a plain
        // `ESC [J` from the top row: tmux (scroll-on-clear) moves the screen into its history
        // when that clears from the top-left corner, and a later resize shows it again.
        return "\r" + (up > 0 ? "\u{1B}[\(up)A" : "") + "\u{1B}[2K\u{1B}7\u{1B}[1B\u{1B}[J\u{1B}8"
    }

    private func draw(_ state: inout State) -> String {
        var out = ""
        // One row each, cut to the width, so the area's height is known without asking the terminal.
        state.drawnPendingWidths = []
        let status = state.status.map { Self.fit($0.row, columns: state.columns - 1) }
        let pending = state.pending.map { Self.fit("[sending…] " + $0.text.rendered, columns: state.columns - 1) }
        for row in Self.shown(status: status, pending: pending, screenRows: state.rows, columns: state.columns) {
            state.drawnPendingWidths.append(DisplayWidth.of(row))
            out += paint(row, "2") + "\n"
        }
        let prompt = self.prompt(state)
        let (visible, cursor) = state.editor.render(prompt: prompt, columns: state.columns)
        state.drawnCursorColumn = cursor
        return out + prompt + visible + "\r" + (cursor > 0 ? "\u{1B}[\(cursor)C" : "")
    }

    /// The rows of the bottom area that fit: at most half the screen's height, the last of them
    /// saying what else there is when not all fit. An area taller than the screen would scroll its
    /// top rows into the terminal's history at every redraw (ten times a second while files
    /// move), burying the chat under copies of them.
    static func shown(status: [String], pending: [String], screenRows: Int, columns: Int) -> [String] {
        let all = status + pending
        let room = screenRows / 2
        guard all.count > room else { return all }
        guard room > 0 else { return [] }
        let kept = room - 1
        let hiddenStatus = max(0, status.count - kept), hiddenPending = pending.count - max(0, kept - status.count)
        var parts: [String] = []
        if hiddenStatus > 0 { parts.append("\(hiddenStatus) more transfer\(hiddenStatus == 1 ? "" : "s")") }
        if hiddenPending > 0 { parts.append("\(hiddenPending) more line\(hiddenPending == 1 ? "" : "s") on the way") }
        return Array(all.prefix(kept)) + [fit("… " + parts.joined(separator: ", "), columns: columns - 1)]
    }

    /// `[bob] `, or `> ` when the name would take more than a third of the row.
    private func prompt(_ state: State) -> String {
        let full = "[\(DisplayText.sanitize(state.name))] "
        return DisplayWidth.of(full) * 3 > state.columns ? "> " : full
    }

    private func paint(_ text: String, _ sgr: String) -> String {
        colors ? "\u{1B}[\(sgr)m\(text)\u{1B}[0m" : text
    }

    /// `text` cut to `columns` columns, with `…` when cut.
    /// A status row in `columns`: the name is cut first, so that how far the transfer is stays in
    /// view on a narrow screen; only when even that does not fit is the whole row cut.
    static func fit(_ row: StatusRow, columns: Int) -> String {
        let (head, tail) = (row.head.rendered, row.tail.rendered)
        let tailWidth = DisplayWidth.of(tail)
        if DisplayWidth.of(head) + tailWidth <= columns { return head + tail }
        if columns - tailWidth >= StatusRow.shortestHead { return fit(head, columns: columns - tailWidth) + tail }
        return fit(head + tail, columns: columns)
    }

    private static func fit(_ text: String, columns: Int) -> String {
        guard DisplayWidth.of(text) > columns else { return text }
        var out = ""
        var width = 0
        for character in text {
            let w = DisplayWidth.of(character)
            if width + w > columns - 1 { break }
            out.append(character)
            width += w
        }
        return out + "…"
    }
}
