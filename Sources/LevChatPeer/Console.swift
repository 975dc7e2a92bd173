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
    private let writer = OutputWriter()
    /// Who this peer is, once in the room: its own lines are bold, lines naming it stand out.
    private let viewer = Mutex<Viewer>(Viewer())
    /// The names this user met before, and the members whose key is not the one remembered for
    /// their name (marked in /who for the rest of the run).
    private let trust: KnownPeersBook?

    struct Viewer {
        var me: NodeID?
        var name: String?
        var keyChanged: Set<NodeID> = []
    }

    public init(json: Bool, look: ConsoleLook = .plain, interactive: (name: String, columns: Int)? = nil, trust: KnownPeersBook? = nil) {
        self.json = json
        self.trust = trust
        self.look = json ? .plain : look
        if let interactive, !json {
            screen = TerminalScreen(name: interactive.name, columns: interactive.columns, colors: look.colors, writer: writer)
            // Lines typed while joining show under the name asked for until the room confirms it.
            viewer.withLock { $0.name = interactive.name }
        } else {
            screen = nil
        }
    }

    public func show(_ event: RoomEvent) {
        learn(event)
        defer { checkKeys(event) }
        switch event {
        case .message(let record, let replayed):
            let late = record.late == true
            if json {
                var object = JSONText().string("type", "message").int("seq", record.seq).string("from", record.from)
                    .string("text", DisplayText.sanitize(record.text))
                if record.chatKind == .action { object = object.string("kind", "action") }
                emit(object.string("time", Timestamp.iso8601(record.time)).bool("history", replayed).bool("late", late))
            } else {
                let (me, myName) = viewer.withLock { ($0.me, $0.name) }
                let own = record.id.node == me
                let mentioned = !own && myName.map { ChatLook.mentions(record.text, name: $0) } == true
                var clock: ScreenText = "\(Timestamp.clock(record.time))"
                var text: ScreenText = "\(record.text)"
                if mentioned {
                    clock = paint(clock, "7")
                    text = paint(text, "1")
                }
                let name = styledName(record.from, own: own)
                let body: ScreenText = record.chatKind == .action ? "* \(name) \(text)" : "\(name): \(text)"
                let line: ScreenText = "\(clock) \(body)\(late ? paint("  (late)", "2") : .empty)"
                let bell = mentioned && !replayed && look.bell
                if own, let screen, screen.confirm(record.id, line: line, bell: bell) { return }
                self.line(line, bell: bell)
            }
        case .pending(let id, let text, let kind):
            // Only the interactive screen shows a line on its way; text and JSON output stay as
            // they were (the echo is the line).
            guard let screen, !json else { return }
            let name = viewer.withLock { $0.name } ?? ""
            screen.addPending(id, text: kind == .action ? "* \(name) \(text)" : "\(name): \(text)")
        case .joined(let member, let time):
            if json {
                emit(JSONText().string("type", "presence").string("event", "joined").string("name", member.name)
                    .string("time", Timestamp.iso8601(time)))
            } else {
                roomEvent("\(Timestamp.clock(time)) * \(member.name) has entered the room")
            }
        case .left(let member, let reason, let time):
            if json {
                emit(JSONText().string("type", "presence").string("event", "left").string("name", member.name)
                    .string("reason", reason).string("time", Timestamp.iso8601(time)))
            } else {
                let why: ScreenText = reason == "lost" ? " (connection lost)" : .empty
                roomEvent("\(Timestamp.clock(time)) * \(member.name) has left the room\(why)")
            }
        case .renamed(let from, let to, let time):
            if json {
                emit(JSONText().string("type", "presence").string("event", "renamed").string("name", to.name)
                    .string("previous", from.name).string("time", Timestamp.iso8601(time)))
            } else {
                roomEvent("\(Timestamp.clock(time)) * \(from.name) is now \(to.name)")
            }
        case .entered(let you, let roster):
            if json {
                emit(JSONText().string("type", "entered").string("name", you.name).int("epoch", roster.epoch)
                    .array("members", membersJSON(roster, you: you.node)))
            } else {
                let verb: ScreenText = roster.host == you.node && roster.members.count == 1 ? "created" : "has entered"
                roomEvent("\(Timestamp.clock(Timestamp.nowMillis())) * \(you.name) \(verb) the room")
                if roster.members.count > 1 { roomEvent("  members: \(membersText(roster, you: you.node))") }
            }
        case .hostChanged(let previous, let host, let epoch, let time):
            if json {
                var object = JSONText().string("type", "host").string("host", host.name).int("epoch", epoch)
                if let previous { object = object.string("previous", previous.name) }
                emit(object.string("time", Timestamp.iso8601(time)))
            } else if let previous {
                roomEvent("\(Timestamp.clock(time)) * \(previous.name) left; \(host.name) is now the host")
            } else {
                roomEvent("\(Timestamp.clock(time)) * \(host.name) is now the host")
            }
        case .notice(let text):
            if json {
                emit(JSONText().string("type", "notice").string("message", DisplayText.sanitize(text)))
            } else {
                roomEvent("* \(text)")
            }
        }
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
            if json {
                emit(JSONText().string("type", "warning").string("kind", "key_changed").string("name", member.name)
                    .string("fingerprint", member.node.hex).string("previous", previous).string("since", since))
            } else {
                line(paint("! \(member.name)'s key has changed since \(since): this may not be \(member.name)", "1;31"), bell: look.bell)
            }
        }
    }

    /// `/whois NAME`: the member's whole fingerprint, and what this user's known_peers says.
    public func showWhois(_ name: String, _ roster: RosterSnapshot) {
        guard let member = roster.members.first(where: { NameRule.sameName($0.name, name) }) else {
            show(.notice("nobody called \(name) is in the room"))
            return
        }
        let known = trust?.entry(for: member.name)
        let changed = viewer.withLock { $0.keyChanged.contains(member.node) }
        if json {
            var object = JSONText().string("type", "whois").string("name", member.name).string("fingerprint", member.node.hex)
                .bool("key_changed", changed)
            if let known { object = object.string("known_since", known.since) }
            emit(object)
            return
        }
        let note: ScreenText
        switch (known, changed) {
        case (let known?, true):
            let fingerprint = NodeID(hex: known.fingerprint).map(Fingerprint.full) ?? known.fingerprint
            note = "NOT the key known for this name since \(known.since) (\(fingerprint))"
        case (let known?, false): note = "known since \(known.since)"
        case (nil, _): note = trust == nil ? "not remembered (throwaway identity)" : "first met now"
        }
        roomEvent("* \(member.name): key fingerprint \(Fingerprint.full(member.node)), \(note)")
    }

    public func showMembers(_ roster: RosterSnapshot, you: NodeID) {
        learnNames(roster.members.map(\.name))
        if json {
            emit(JSONText().string("type", "members").int("epoch", roster.epoch).array("members", membersJSON(roster, you: you)))
        } else {
            roomEvent("* \(roster.members.count) in the room: \(membersText(roster, you: you))")
        }
    }

    /// `/history`: the newest records this peer holds, in the room's order (which, after a host
    /// change or a healed split, can differ from the order they were first shown in).
    public func showHistory(_ log: RoomLog, last count: Int) {
        let records = log.history.suffix(min(count, log.history.count))
        if json {
            let messages = records.map { record in
                var object = JSONText().int("seq", record.seq).string("from", record.from).string("text", DisplayText.sanitize(record.text))
                if record.chatKind == .action { object = object.string("kind", "action") }
                return object.string("time", Timestamp.iso8601(record.time)).bool("late", record.late == true)
            }
            emit(JSONText().string("type", "history").array("messages", Array(messages)))
            return
        }
        guard !records.isEmpty else {
            roomEvent("* no messages yet")
            return
        }
        let older = log.history.count - records.count
        let what: ScreenText = records.count == 1 ? "the last message" : "the last \(records.count) messages"
        roomEvent("* \(what)\(older > 0 ? " (\(older) older kept; /history all)" : .empty):")
        for record in records {
            let body: ScreenText = record.chatKind == .action ? "* \(record.from) \(record.text)" : "\(record.from): \(record.text)"
            line("  \(Timestamp.clock(record.time)) \(body)\(record.late == true ? "  (late)" : .empty)")
        }
    }

    public func showRoom(code: RoomCode, name: String, port: Int) {
        if json {
            emit(JSONText().string("type", "room").string("code", code.description).string("name", name).int("port", port))
        } else {
            line("Room code: \(describing: code)   (share it; others run: levchat-peer join \(describing: code))")
        }
    }

    /// `/code`: the room code again.
    public func showCode(_ code: RoomCode) {
        if json {
            emit(JSONText().string("type", "code").string("code", code.description))
        } else {
            roomEvent("* room code: \(describing: code)   (others run: levchat-peer join \(describing: code))")
        }
    }

    /// The last line of a run, in JSON mode only: how it ended.
    public func showEnd(_ reason: String, message: String) {
        guard json else { return }
        emit(JSONText().string("type", "closed").string("reason", reason).string("message", message))
    }

    /// Answers what needs no role (help, the code, a usage); returns what the room's role has to
    /// act on. The one dispatch of a typed line: the parser and its table are `InputLine`'s.
    func answer(_ line: InputLine, code: RoomCode) -> RoomRequest? {
        switch line {
        case .help: help()
        case .code: showCode(code)
        case .unknownCommand(let name): show(.notice("unknown command /\(name); /help lists the commands"))
        case .usage(let usage): show(.notice("usage: \(usage)"))
        case .empty: break
        case .say, .act, .nick, .who, .whois, .history, .quit: return line.roomRequest
        }
        return nil
    }

    public func help() {
        if json {
            emit(JSONText().string("type", "help").string("text", InputLine.helpText))
        } else {
            line("\(InputLine.helpText)")
        }
    }

    /// An error for the user: a JSON event in JSON mode, a line on stderr otherwise.
    public func error(_ message: String) {
        if json {
            emit(JSONText().string("type", "error").string("message", message))
        } else {
            diagnostic("levchat-peer: \(message)")
        }
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

    /// A room event (presence, host change, notice): muted, so chat stands out.
    private func roomEvent(_ text: ScreenText) { line(paint(text, "2")) }

    private func emit(_ object: JSONText) { line(ScreenText(json: object)) }

    private func paint(_ text: ScreenText, _ sgr: StaticString) -> ScreenText {
        ScreenText.styled(text, sgr, enabled: look.colors)
    }

    /// A name in its colour (`ChatLook`), your own in bold.
    private func styledName(_ name: String, own: Bool) -> ScreenText {
        ScreenText.colored("\(name)", palette: ChatLook.color(of: name), bold: own, enabled: look.colors)
    }

    /// Keeps who this peer is (bold own lines, mentions) and, on the screen, who is in the room (Tab).
    private func learn(_ event: RoomEvent) {
        switch event {
        case .entered(let you, let roster):
            viewer.withLock { $0.me = you.node; $0.name = you.name }
            screen?.setName(you.name)
            learnNames(roster.members.map(\.name))
        case .joined(let member, _):
            screen?.updateNames { $0.filter { $0 != member.name } + [member.name] }
        case .left(let member, _, _):
            screen?.updateNames { $0.filter { $0 != member.name } }
        case .renamed(let from, let to, _):
            let mine = viewer.withLock { viewer in
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

    private func membersText(_ roster: RosterSnapshot, you: NodeID) -> ScreenText {
        let changed = viewer.withLock { $0.keyChanged }
        return ScreenText.joined(roster.members.map { member in
            var tags: [String] = []
            if member.node == roster.host { tags.append("host") }
            if member.node == you { tags.append("you") }
            if changed.contains(member.node) { tags.append("KEY CHANGED") }
            let tagged: ScreenText = tags.isEmpty ? .empty : " (\(tags.joined(separator: ", ")))"
            return "\(member.name) [\(Fingerprint.short(member.node))]\(tagged)"
        }, separator: ", ")
    }

    private func membersJSON(_ roster: RosterSnapshot, you: NodeID) -> [JSONText] {
        let changed = viewer.withLock { $0.keyChanged }
        return roster.members.map { member in
            JSONText().string("name", member.name).int("ordinal", member.ordinal)
                .bool("host", member.node == roster.host).bool("you", member.node == you)
                .string("fingerprint", member.node.hex).bool("key_changed", changed.contains(member.node))
        }
    }
}

public enum Timestamp {
    public static func nowMillis() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// `[12:03:55]` in local time.
    static func clock(_ millis: Int64) -> String {
        var seconds = time_t(millis / 1000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        return "[" + two(parts.tm_hour) + ":" + two(parts.tm_min) + ":" + two(parts.tm_sec) + "]"
    }

    /// `2026-11-21T12:03:55.123Z`
    public static func iso8601(_ millis: Int64) -> String {
        var seconds = time_t(millis / 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let ms = String(millis % 1000)
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))."
            + String(repeating: "0", count: 3 - ms.count) + ms + "Z"
    }

    private static func two(_ n: Int32) -> String { n < 10 ? "0\(n)" : "\(n)" }
}

/// Monotonic and wall time for the state machines.
public struct PeerClock: Sendable {
    /// One origin for the whole process: state made with one clock's readings (a promoted
    /// host's collection deadline, a session's last-heard time) is ticked by another's. With an
    /// origin per clock, a host promoted after an hour kept its collection window for an hour.
    private static let origin = ContinuousClock.now
    public init() {}
    public func now() -> Moment {
        Moment(monotonic: ContinuousClock.now - PeerClock.origin, wallMillis: Timestamp.nowMillis())
    }
}
