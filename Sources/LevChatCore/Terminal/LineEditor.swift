/// Columns a piece of text takes on a terminal: grapheme clusters stay whole; East Asian wide and
/// fullwidth characters and emoji take two columns, combining marks and joiners none of their own.
public enum DisplayWidth {
    public static func of(_ character: Character) -> Int {
        guard let first = character.unicodeScalars.first else { return 0 }
        // An emoji sequence (with a presentation selector, a skin tone or joiners) is one emoji.
        if first.properties.isEmojiPresentation
            || (first.properties.isEmoji && character.unicodeScalars.contains { $0.value == 0xFE0F || $0.value == 0x200D }) {
            return 2
        }
        if isWide(first.value) { return 2 }
        if first.properties.generalCategory == .nonspacingMark || first.properties.generalCategory == .enclosingMark
            || first.value == 0x200B || first.value == 0x200D {
            return 0
        }
        return 1
    }

    public static func of(_ text: some StringProtocol) -> Int { text.reduce(0) { $0 + of($1) } }

    /// East Asian Wide (W) and Fullwidth (F) ranges, in the main planes.
    static func isWide(_ v: UInt32) -> Bool {
        switch v {
        case 0x1100...0x115F, 0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF,
             0xA000...0xA4CF, 0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60,
             0xFFE0...0xFFE6, 0x20000...0x2FFFD, 0x30000...0x3FFFD:
            true
        default:
            false
        }
    }
}

/// The input line of the terminal chat (`TerminalScreen` draws it; Docs/CLI.md): the text being
/// typed as grapheme clusters, the cursor, this run's history and Tab completion. Pure: keys in,
/// what to do out; `render` says what the bottom line shows in a given width.
public struct LineEditor: Sendable {
    public enum Outcome: Equatable, Sendable {
        /// The line changed (or the cursor moved): redraw it.
        case redraw
        /// Nothing to do (a key with no effect here).
        case none
        /// Enter: this line is the user's; the editor is empty again.
        case submit(String)
        case interrupt
        /// Ctrl-D on an empty line.
        case endOfInput
    }

    public private(set) var characters: [Character] = []
    /// Position in `characters`, 0...count.
    public private(set) var cursor = 0
    private var history: [String] = []
    /// While browsing history: the index shown, and the line that was being typed.
    private var browsing: Int?
    private var draft: [Character] = []
    public let historyLimit: Int

    public init(historyLimit: Int = 500) {
        self.historyLimit = historyLimit
    }

    public var text: String { String(characters) }

    /// `completions` are the words Tab may complete to: member names, and `/commands` at the
    /// start of the line. After `/send `, Tab completes a path instead: `paths` gives the paths
    /// that begin with what is typed (folders ending in `/`), and the completion goes in escaped
    /// as a shell user would type it (`my\ report.pdf`); after the path, a member's name again.
    public mutating func handle(_ key: EditorKey, completions: [String] = [],
                                paths: (String) -> [String] = { _ in [] }) -> Outcome {
        switch key {
        case .text(let typed):
            let new = Array(typed)
            characters.insert(contentsOf: new, at: cursor)
            cursor += new.count
        case .enter:
            let line = text
            if line.contains(where: { $0 != " " && $0 != "\t" }) && history.last != line {
                history.append(line)
                if history.count > historyLimit { history.removeFirst() }
            }
            characters = []
            cursor = 0
            browsing = nil
            return .submit(line)
        case .backspace:
            guard cursor > 0 else { return .none }
            characters.remove(at: cursor - 1)
            cursor -= 1
        case .delete:
            guard cursor < characters.count else { return .none }
            characters.remove(at: cursor)
        case .left:
            guard cursor > 0 else { return .none }
            cursor -= 1
        case .right:
            guard cursor < characters.count else { return .none }
            cursor += 1
        case .home: cursor = 0
        case .end: cursor = characters.count
        case .killToEnd: characters.removeSubrange(cursor...)
        case .killToStart:
            characters.removeSubrange(..<cursor)
            cursor = 0
        case .deleteWordBack:
            var start = cursor
            while start > 0 && characters[start - 1] == " " { start -= 1 }
            while start > 0 && characters[start - 1] != " " { start -= 1 }
            characters.removeSubrange(start..<cursor)
            cursor = start
        case .up:
            guard !history.isEmpty else { return .none }
            let index = (browsing ?? history.count) - 1
            guard index >= 0 else { return .none }
            if browsing == nil { draft = characters }
            browsing = index
            characters = Array(history[index])
            cursor = characters.count
        case .down:
            guard let index = browsing else { return .none }
            if index + 1 < history.count {
                browsing = index + 1
                characters = Array(history[index + 1])
            } else {
                browsing = nil
                characters = draft
            }
            cursor = characters.count
        case .tab:
            if let start = pathArgumentStart {
                guard pastThePath(from: start) else { return completePath(from: start, paths) ? .redraw : .none }
                // `/send`'s NAME is a shell word too: `bob smith` goes in as `bob\ smith`.
                return complete(from: completions, asShellWord: true) ? .redraw : .none
            }
            return complete(from: completions) ? .redraw : .none
        case .interrupt: return .interrupt
        case .endOfInput: return characters.isEmpty ? .endOfInput : .none
        case .suspend: return .none
        case .redraw: break
        }
        return .redraw
    }

    /// Where the path of a `/send` begins, when the cursor is in it.
    private var pathArgumentStart: Int? {
        let command = Array("/send ")
        guard characters.count >= command.count, Array(characters[..<command.count]) == command, cursor >= command.count else { return nil }
        return command.count
    }

    /// Whether the cursor is past the path of a `/send`, in the member's name that may follow it
    /// (`/send report.pdf car` + Tab completes the name).
    private func pastThePath(from start: Int) -> Bool {
        let typed = String(characters[start..<cursor])
        guard let words = ShellWords.split(typed + "x") else { return false }
        return words.count >= 2
    }

    private mutating func completePath(from start: Int, _ paths: (String) -> [String]) -> Bool {
        guard let words = ShellWords.split(String(characters[start..<cursor])), words.count <= 1 else { return false }
        let typed = words.first ?? ""
        let matches = paths(typed).filter { $0.hasPrefix(typed) }
        guard let first = matches.first else { return false }
        var completion: String
        if matches.count == 1 {
            completion = first
        } else {
            completion = String(matches.dropFirst().reduce(Array(first)) { common, next in
                Array(zip(common, next).prefix { $0 == $1 }.map(\.0))
            })
            guard completion.count > typed.count else { return false }
        }
        let whole = matches.count == 1 && !completion.hasSuffix("/")
        let inserted = Array(ShellWords.escape(completion) + (whole ? " " : ""))
        characters.replaceSubrange(start..<cursor, with: inserted)
        cursor = start + inserted.count
        return true
    }

    /// Completes the word before the cursor: fully when one candidate fits (with a space after,
    /// or ": " for a name at the start of the line), else as far as all candidates agree;
    /// `asShellWord`, escaped as `ShellWords` reads it.
    private mutating func complete(from candidates: [String], asShellWord: Bool = false) -> Bool {
        var start = cursor
        while start > 0 && characters[start - 1] != " " { start -= 1 }
        let word = String(characters[start..<cursor])
        guard !word.isEmpty else { return false }
        let atStart = start == 0
        let matches = candidates.filter {
            (atStart || !$0.hasPrefix("/")) && $0.lowercased().hasPrefix(word.lowercased())
        }
        guard let first = matches.first else { return false }
        var completion: String
        if matches.count == 1 {
            completion = first + (first.hasPrefix("/") ? " " : (atStart ? ": " : " "))
        } else {
            completion = matches.dropFirst().reduce(first) { common, next in
                String(zip(common.lowercased(), next.lowercased()).prefix { $0 == $1 }.map(\.0).prefix(common.count))
            }
            completion = String(first.prefix(completion.count))
            guard completion.count > word.count else { return false }
        }
        if asShellWord {
            let whole = completion.hasSuffix(" ") && matches.count == 1
            completion = ShellWords.escape(whole ? String(completion.dropLast()) : completion) + (whole ? " " : "")
        }
        characters.replaceSubrange(start..<cursor, with: Array(completion))
        cursor = start + completion.count
        return true
    }

    /// What the bottom line shows in `columns` columns after `prompt`: a window of the text that
    /// keeps the cursor visible (the line scrolls sideways), and the cursor's column in it.
    public func render(prompt: String, columns: Int) -> (visible: String, cursorColumn: Int) {
        let room = max(1, columns - DisplayWidth.of(prompt) - 1)
        // Start the window as far left as possible while the cursor still fits.
        var start = 0
        var widthToCursor = DisplayWidth.of(String(characters[..<cursor]))
        while widthToCursor > room && start < cursor {
            widthToCursor -= DisplayWidth.of(characters[start])
            start += 1
        }
        var end = start
        var width = 0
        while end < characters.count && width + DisplayWidth.of(characters[end]) <= room {
            width += DisplayWidth.of(characters[end])
            end += 1
        }
        return (String(characters[start..<end]), DisplayWidth.of(prompt) + widthToCursor)
    }
}
