#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LevChatCore
import Synchronization

/// How text output looks (Docs/CLI.md, "Colours"): colours only on a terminal, never in JSON.
public struct ConsoleLook: Sendable {
    public var colors: Bool
    /// Ring the terminal bell when a line mentions you.
    public var bell: Bool
    public init(colors: Bool, bell: Bool) {
        self.colors = colors
        self.bell = bell
    }
    public static let plain = ConsoleLook(colors: false, bell: false)
}

/// Where a peer's user-visible output goes: chat lines and events to stdout (as text or one JSON
/// object per line), diagnostics to stderr. Untrusted text is made safe before it is printed.
/// Writing happens on a thread of its own (`OutputWriter`); on an interactive terminal the lines
/// go above the input line of the `TerminalScreen`.
public final class Console: Sendable {
    public let json: Bool
    let look: ConsoleLook
    /// The interactive screen, when stdin and stdout are a terminal (never with `--json`).
    public let screen: TerminalScreen?
    private let renderer: any Renderer
    private let writer: OutputWriter
    /// Who this peer is (its node from the start, its name once in the room): its own lines are
    /// bold, its own offers are its own even in the history a joiner sees before it has entered,
    /// lines naming it stand out.
    private let viewer: Mutex<Viewer>
    /// The names this user met before, and the members whose key is not the one remembered for
    /// their name (marked in /who for the rest of the run).
    private let trust: KnownPeersBook?

    /// `me` is this peer's node (its identity's); `sink` takes the output in place of stdout and
    /// stderr (in-process tests).
    public init(json: Bool, look: ConsoleLook = .plain, interactive: (name: String, columns: Int, rows: Int)? = nil, trust: KnownPeersBook? = nil,
                me: NodeID? = nil, sink: ConsoleSink? = nil) {
        viewer = Mutex(Viewer(me: me))
        self.json = json
        writer = OutputWriter(sink: sink)
        self.trust = trust
        self.look = json ? .plain : look
        renderer = json ? JSONRenderer() : TextRenderer(look: look)
        if let interactive, !json {
            screen = TerminalScreen(name: interactive.name, columns: interactive.columns, rows: interactive.rows, colors: look.colors, writer: writer)
            // Lines typed while joining show under the name asked for until the room confirms it.
            viewer.withLock { $0.name = interactive.name }
        } else {
            screen = nil
        }
    }

    public func show(_ event: RoomEvent) {
        // The history shown on joining comes before the room is entered, and the roster with
        // it: held until then, so that an offer whose sender has left since shows as a thing of
        // the past, not as open and ended the next moment.
        if case .message(_, replayed: true) = event, heldHistory.withLock({ held in held?.append(event) != nil }) { return }
        if case .entered(_, let roster) = event, let held = heldHistory.withLock({ held in defer { held = nil }; return held }) {
            board.withLock { $0.present = Set(roster.members.map(\.node)) }
            held.forEach(show)
        }
        learn(event)
        let files = fileEvents(event)
        if case .message(let record, let replayed) = event, record.chatKind == .offer {
            // An offer shows as one, or (seen before) not at all; this peer's own is the echo of
            // its `/send`, which takes the place of its pending row on the screen. One from the
            // history whose sender has left shows as the line `/history` has for it.
            if replayed, files.isEmpty, board.withLock({ [me = viewer.withLock { $0.me }] in $0.isClosedOffer(record.id, shownTo: me) }) {
                print(renderer.render(event, viewer: viewer.withLock { $0 }))
                return
            }
            var lines = files.flatMap(renderer.file)
            if !lines.isEmpty, !replayed, record.id.node == viewer.withLock({ $0.me }) { lines[0].confirms = record.id }
            print(lines)
            return
        }
        if case .pending(let id, let text, let kind) = event, let screen {
            // Only the interactive screen shows a line on its way; text and JSON output stay as
            // they were (the echo is the line).
            let name = viewer.withLock { $0.name } ?? ""
            let shown: ScreenText
            switch kind {
            case .text: shown = "\(name): \(text)"
            case .action: shown = "* \(name) \(text)"
            case .offer: shown = "* \(name) offers \(FileOffer(text: text)?.name ?? "a file")"
            }
            screen.addPending(id, text: shown)
        }
        print(renderer.render(event, viewer: viewer.withLock { $0 }))
        print(files.flatMap(renderer.file))
        checkKeys(event)
    }

    // MARK: Files

    /// The offers seen, numbered (`/get ID`); an offer ends when its sender leaves.
    private let board = Mutex(FileBoard())
    /// The history shown on joining, until the room is entered (nil from then on).
    private let heldHistory = Mutex<[RoomEvent]?>([])

    private func fileEvents(_ event: RoomEvent) -> [FileEvent] {
        switch event {
        case .message(let record, let replayed):
            guard record.chatKind == .offer, let (entry, new) = board.withLock({ $0.saw(record) }), new, entry.open,
                  let shown = shown(entry) else { return [] }
            return [.offered(shown, replayed: replayed, own: entry.sender == viewer.withLock { $0.me })]
        case .left(let member, _, _):
            return ended(board.withLock { $0.senderLeft(member.node) }, why: "\(member.name) left")
        case .hostChanged(let previous, let host, _, _):
            // The new host is in the room: its offers are open (after a split healed, this peer
            // may have seen it leave). The previous host left, unless that is this peer.
            let back = reopened(board.withLock { $0.senderReturned(host.node) })
            guard let previous, previous.node != viewer.withLock({ $0.me }) else { return back }
            return ended(board.withLock { $0.senderLeft(previous.node) }, why: "\(previous.name) left") + back
        case .entered(_, let roster):
            return ended(board.withLock { $0.keepOnly(senders: Set(roster.members.map(\.node))) }, why: "its sender left")
        case .joined(let member, _):
            return reopened(board.withLock { $0.senderReturned(member.node) })
        case .renamed, .notice, .pending:
            return []
        }
    }

    private func ended(_ entries: [FileBoard.Entry], why: String) -> [FileEvent] {
        let shown = entries.compactMap(shown)
        return shown.isEmpty ? [] : [.ended(shown, why: why)]
    }

    private func reopened(_ entries: [FileBoard.Entry]) -> [FileEvent] {
        let shown = entries.compactMap(shown)
        return shown.isEmpty ? [] : [.reopened(shown)]
    }

    /// The entry as this user may see it (an offer to another member is not shown), with the
    /// name of the member it is offered to.
    private func shown(_ entry: FileBoard.Entry) -> FileBoard.Entry? {
        let recipient = entry.offer.recipient
        // Only the one name looked up, not the whole table copied out of the lock.
        let (me, recipientName) = viewer.withLock { viewer in
            (viewer.me, recipient.flatMap { $0 == viewer.me ? viewer.name : nil } ?? recipient.flatMap { viewer.names[$0] })
        }
        guard entry.isShown(to: me) else { return nil }
        var shown = entry
        if let recipient {
            shown.toViewer = recipient == me
            shown.recipientName = recipientName ?? Fingerprint.short(recipient)
        }
        return shown
    }

    /// A member's name as this peer last knew it.
    func memberName(_ node: NodeID) -> String? { viewer.withLock { $0.names[node] } }

    /// On the terminal screen a transfer's progress is a status row above the input line, gone
    /// when the transfer ends; elsewhere each renderer prints it.
    func showFile(_ event: FileEvent) {
        if let screen {
            switch event {
            case .progress(let entry, let bytes, let rate):
                screen.setStatus(entry.id, Console.status(entry, bytes: bytes, rate: rate))
                return
            case .sending(let entry, let to, let row, let bytes, let rate):
                screen.setStatus(row, Console.status(entry, to: to, bytes: bytes, rate: rate))
                return
            case .sendEnded(_, _, let row, _, _): screen.setStatus(row, nil)
            case .received(let entry, _): screen.setStatus(entry.id, nil)
            case .failed(let id, _, _, _), .cancelled(let id, _): screen.setStatus(id, nil)
            case .offered, .ended, .reopened, .list, .started, .sent: break
            }
        }
        print(renderer.file(event))
    }

    /// `⇣ report.pdf  40 %  1.0 MB of 2.4 MB  12.3 MB/s  0:12 left`; going out to `to`,
    /// `⇡ report.pdf to bob  40 %  …`.
    static func status(_ entry: FileBoard.Entry, to: String? = nil, bytes: Int, rate: Double) -> StatusRow {
        let size = entry.offer.size
        let percent = size == 0 ? 100 : bytes * 100 / size
        let left = rate > 0 ? Int(Double(size - bytes) / rate) : 0
        let seconds = left % 60
        let eta = rate > 0 ? "\(left / 60):\(seconds < 10 ? "0" : "")\(seconds) left" : "…"
        let figures: ScreenText = "  \(percent) %  \(ByteCount.describe(bytes)) of \(ByteCount.describe(size))  \(ByteCount.describe(Int(rate)))/s  \(eta)"
        if let to { return StatusRow(head: "⇡ \(entry.offer.name) to \(to)", tail: figures) }
        return StatusRow(head: "⇣ \(entry.offer.name)", tail: figures)
    }

    /// Whether progress goes to a status row (redrawn often) rather than printed lines.
    var showsStatusRows: Bool { screen != nil }

    func fileEntry(_ id: Int) -> FileBoard.Entry? { board.withLock { $0.entry(id) }.flatMap(shown) }
    func openOffers() -> [FileBoard.Entry] { board.withLock { $0.open }.compactMap(shown) }
    func ownOffer(file token: String) -> FileBoard.Entry? {
        guard let me = viewer.withLock({ $0.me }) else { return nil }
        return board.withLock { $0.entry(file: token, from: me) }
    }

    /// Trust on first use: every member met is checked against known_peers; a name that comes
    /// with another key than the one remembered is a warning that stands out.
    private func checkKeys(_ event: RoomEvent) {
        guard let trust else { return }
        let met: [Member]
        switch event {
        case .entered(let you, let roster): met = roster.members.filter { $0.node != you.node }
        case .joined(let member, _): met = [member]
        case .renamed(_, let to, _): met = [to]
        case .hostChanged(_, let host, _, _): met = [host]
        case .message, .left, .notice, .pending: met = []
        }
        let me = viewer.withLock { $0.me }
        for member in met where member.node != me {
            guard case .changed(let previous, let since) = trust.meet(name: member.name, node: member.node) else { continue }
            let newly = viewer.withLock { $0.keyChanged.insert(member.node).inserted }
            guard newly else { continue }
            print([renderer.keyChanged(member, previous: previous, since: since)])
        }
    }

    /// `/whois NAME`: the member's whole fingerprint, and what this user's known_peers says.
    public func showWhois(_ name: String, _ roster: RosterSnapshot) {
        guard let member = roster.members.first(where: { NameRule.sameName($0.name, name) }) else {
            show(.notice("nobody called \(name) is in the room"))
            return
        }
        let known = trust?.entry(for: member.name).map { (since: $0.since, fingerprint: $0.fingerprint) }
        let changed = viewer.withLock { $0.keyChanged.contains(member.node) }
        print([renderer.whois(member, KeyKnowledge(known: known, changed: changed, remembering: trust != nil))])
    }

    public func showMembers(_ roster: RosterSnapshot, you: NodeID) {
        learnNames(roster.members.map(\.name))
        print([renderer.members(roster, you: you, keyChanged: viewer.withLock { $0.keyChanged })])
    }

    /// `/history`: the newest records this peer holds, in the room's order (which, after a host
    /// change or a healed split, can differ from the order they were first shown in).
    public func showHistory(_ log: RoomLog, last count: Int) {
        // An offer to another member is not this user's to see, here as in the live lines.
        let me = viewer.withLock { $0.me }
        let visible = log.history.filter { record in
            guard record.chatKind == .offer, let offer = FileOffer(text: record.text) else { return true }
            return offer.isShown(to: me, sentBy: record.id.node)
        }
        let records = visible.suffix(min(count, visible.count))
        print(renderer.history(Array(records), older: visible.count - records.count))
    }

    public func showRoom(code: RoomCode, name: String, port: Int) {
        print([renderer.room(code: code, name: name, port: port)])
    }

    /// `/code`: the room code again.
    public func showCode(_ code: RoomCode) {
        print([renderer.code(code)])
    }

    /// The last line of a run, in JSON mode only: how it ended.
    public func showEnd(_ reason: String, message: String) {
        print(renderer.end(reason: reason, message: message).map { [$0] } ?? [])
    }

    /// Answers what needs no role (help, the code, a usage); returns what the room's role has to
    /// act on. The one dispatch of a typed line: the parser and its table are `InputLine`'s.
    func answer(_ line: InputLine, code: RoomCode) -> RoomRequest? {
        switch line {
        case .help: help()
        case .code: showCode(code)
        case .unknownCommand(let name): show(.notice(ChatCommand.unknown(name)))
        case .usage(let usage): show(.notice("usage: \(usage)"))
        case .empty: break
        case .say, .act, .nick, .who, .whois, .history, .quit: return line.roomRequest
        case .send, .get, .files, .cancel: break  // the file desk's (`RoomPeer.handle`)
        }
        return nil
    }

    public func help() {
        print(renderer.help())
    }

    /// An error for the user: a JSON event in JSON mode, a line on stderr otherwise.
    public func error(_ message: String) {
        if let printed = renderer.error(message) { print([printed]) } else { diagnostic("levchat-peer: \(message)") }
    }

    /// A line on stderr. Every diagnostic is escaped here (it is a `ScreenText` made from the
    /// string), whatever it holds: a peer's words inside a log message or an error cannot drive
    /// the terminal.
    public func diagnostic(_ text: String) {
        let safe = ScreenText(escaping: text)
        if let screen, screen.printAbove(safe, fd: 2) { return }
        writer.write(2, safe.rendered + "\n")
    }

    /// A line on stdout (or above the input line). Only `ScreenText` gets here: see its comment.
    public func line(_ text: ScreenText, bell: Bool = false) {
        if let screen, screen.printAbove(text, bell: bell) { return }
        writer.write(1, text.rendered + "\n" + (bell ? "\u{07}" : ""))
    }

    /// Ends the interactive screen (own lines never echoed are marked as not sent), then waits
    /// until everything printed so far is written: the last thing a run does.
    public func finish() {
        screen?.close()
        writer.flush()
    }

    /// Where rendered lines go: the screen (an own line's echo replaces its pending line) or
    /// stdout.
    private func print(_ lines: [Printed]) {
        for printed in lines {
            if let id = printed.confirms, let screen, screen.confirm(id, line: printed.text, bell: printed.bell) { continue }
            line(printed.text, bell: printed.bell)
        }
    }

    /// Keeps who this peer is (bold own lines, mentions) and, on the screen, who is in the room (Tab).
    private func learn(_ event: RoomEvent) {
        switch event {
        case .entered(let you, let roster):
            viewer.withLock { viewer in
                viewer.me = you.node
                viewer.name = you.name
                for member in roster.members { viewer.names[member.node] = member.name }
            }
            screen?.setName(you.name)
            learnNames(roster.members.map(\.name))
        case .joined(let member, _):
            viewer.withLock { $0.names[member.node] = member.name }
            screen?.updateNames { $0.filter { $0 != member.name } + [member.name] }
        case .left(let member, _, _):
            screen?.updateNames { $0.filter { $0 != member.name } }
        case .renamed(let from, let to, _):
            let mine = viewer.withLock { viewer in
                viewer.names[to.node] = to.name
                guard viewer.me == to.node else { return false }
                viewer.name = to.name
                return true
            }
            if mine { screen?.setName(to.name) }
            screen?.updateNames { $0.filter { $0 != from.name } + [to.name] }
        case .message, .pending, .hostChanged, .notice:
            return  // nothing about who is who
        }
    }

    private func learnNames(_ names: [String]) {
        screen?.updateNames { _ in names }
    }
}
