#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import LevChatCore
import Synchronization

/// Where a peer's user-visible output goes: chat lines and events to stdout (as text or one JSON
/// object per line), diagnostics to stderr. Untrusted text is made safe before it is printed.
public final class Console: Sendable {
    public let json: Bool
    private let lock = Mutex(())

    public init(json: Bool) {
        self.json = json
    }

    public func show(_ event: RoomEvent) {
        switch event {
        case .message(let record, let replayed):
            let late = record.late == true
            if json {
                emit(JSONLine().string("type", "message").int("seq", record.seq).string("from", record.from)
                    .string("text", DisplayText.sanitize(record.text)).string("time", Timestamp.iso8601(record.time))
                    .bool("history", replayed).bool("late", late))
            } else {
                line("\(Timestamp.clock(record.time)) \(DisplayText.sanitize(record.from)): \(DisplayText.sanitize(record.text))\(late ? "  (late)" : "")")
            }
        case .joined(let member, let time):
            if json {
                emit(JSONLine().string("type", "presence").string("event", "joined").string("name", member.name)
                    .string("time", Timestamp.iso8601(time)))
            } else {
                line("\(Timestamp.clock(time)) * \(DisplayText.sanitize(member.name)) has entered the room")
            }
        case .left(let member, let reason, let time):
            if json {
                emit(JSONLine().string("type", "presence").string("event", "left").string("name", member.name)
                    .string("reason", reason).string("time", Timestamp.iso8601(time)))
            } else {
                let why = reason == "lost" ? " (connection lost)" : ""
                line("\(Timestamp.clock(time)) * \(DisplayText.sanitize(member.name)) has left the room\(why)")
            }
        case .entered(let you, let roster):
            if json {
                emit(JSONLine().string("type", "entered").string("name", you.name).int("epoch", roster.epoch)
                    .raw("members", membersJSON(roster, you: you.node)))
            } else {
                let verb = roster.host == you.node && roster.members.count == 1 ? "created" : "has entered"
                line("\(Timestamp.clock(Timestamp.nowMillis())) * \(DisplayText.sanitize(you.name)) \(verb) the room")
                if roster.members.count > 1 { line("  members: \(membersText(roster, you: you.node))") }
            }
        case .hostChanged(let previous, let host, let epoch, let time):
            if json {
                var object = JSONLine().string("type", "host").string("host", host.name).int("epoch", epoch)
                if let previous { object = object.string("previous", previous.name) }
                emit(object.string("time", Timestamp.iso8601(time)))
            } else if let previous {
                line("\(Timestamp.clock(time)) * \(DisplayText.sanitize(previous.name)) left; \(DisplayText.sanitize(host.name)) is now the host")
            } else {
                line("\(Timestamp.clock(time)) * \(DisplayText.sanitize(host.name)) is now the host")
            }
        case .notice(let text):
            if json {
                emit(JSONLine().string("type", "notice").string("message", DisplayText.sanitize(text)))
            } else {
                line("* \(DisplayText.sanitize(text))")
            }
        }
    }

    public func showMembers(_ roster: RosterSnapshot, you: NodeID) {
        if json {
            emit(JSONLine().string("type", "members").int("epoch", roster.epoch).raw("members", membersJSON(roster, you: you)))
        } else {
            line("* \(roster.members.count) in the room: \(membersText(roster, you: you))")
        }
    }

    public func showRoom(code: RoomCode, name: String, port: Int) {
        if json {
            emit(JSONLine().string("type", "room").string("code", code.description).string("name", name).int("port", port))
        } else {
            line("Room code: \(code)   (share it; others run: levchat-peer join \(code))")
        }
    }

    /// The last line of a run, in JSON mode only: how it ended.
    public func showEnd(_ reason: String, message: String) {
        guard json else { return }
        emit(JSONLine().string("type", "closed").string("reason", reason).string("message", message))
    }

    /// Answers the commands that are the same whatever this peer's role; returns the line when the
    /// role has to act on it (`.say`, `.who`, `.quit`).
    func answerCommon(_ line: InputLine) -> InputLine? {
        switch line {
        case .help: help()
        case .unknownCommand(let name): show(.notice("unknown command /\(name); /help lists the commands"))
        case .empty: break
        case .say, .who, .quit: return line
        }
        return nil
    }

    public func help() {
        if json {
            emit(JSONLine().string("type", "help").string("text", InputLine.helpText))
        } else {
            line(InputLine.helpText)
        }
    }

    /// An error for the user: a JSON event in JSON mode, a line on stderr otherwise.
    public func error(_ message: String) {
        if json {
            emit(JSONLine().string("type", "error").string("message", message))
        } else {
            diagnostic("levchat-peer: \(message)")
        }
    }

    public func diagnostic(_ text: String) {
        lock.withLock { _ in Console.writeAll(2, text + "\n") }
    }

    public func line(_ text: String) {
        lock.withLock { _ in Console.writeAll(1, text + "\n") }
    }

    /// Unbuffered, so lines reach a pipe at once and in order with stderr.
    private static func writeAll(_ fd: Int32, _ text: String) {
        var bytes = Array(text.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { return }
            bytes = bytes.dropFirst(written)
        }
    }

    private func emit(_ object: JSONLine) { line(object.text) }

    private func membersText(_ roster: RosterSnapshot, you: NodeID) -> String {
        roster.members.map { member in
            var tags: [String] = []
            if member.node == roster.host { tags.append("host") }
            if member.node == you { tags.append("you") }
            return DisplayText.sanitize(member.name) + (tags.isEmpty ? "" : " (\(tags.joined(separator: ", ")))")
        }.joined(separator: ", ")
    }

    private func membersJSON(_ roster: RosterSnapshot, you: NodeID) -> String {
        "[" + roster.members.map { member in
            JSONLine().string("name", member.name).int("ordinal", member.ordinal)
                .bool("host", member.node == roster.host).bool("you", member.node == you).text
        }.joined(separator: ",") + "]"
    }
}

/// A JSON object written field by field, so `type` comes first and output is stable.
struct JSONLine {
    private var fields: [String] = []

    func string(_ key: String, _ value: String) -> JSONLine { adding(key, JSONLine.quote(value)) }
    func int(_ key: String, _ value: Int) -> JSONLine { adding(key, String(value)) }
    func bool(_ key: String, _ value: Bool) -> JSONLine { adding(key, value ? "true" : "false") }
    func raw(_ key: String, _ json: String) -> JSONLine { adding(key, json) }

    var text: String { "{" + fields.joined(separator: ",") + "}" }

    private func adding(_ key: String, _ value: String) -> JSONLine {
        var copy = self
        copy.fields.append(JSONLine.quote(key) + ":" + value)
        return copy
    }

    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
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
    static func iso8601(_ millis: Int64) -> String {
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
    private let start = ContinuousClock.now
    public init() {}
    public func now() -> Moment {
        Moment(monotonic: ContinuousClock.now - start, wallMillis: Timestamp.nowMillis())
    }
}
