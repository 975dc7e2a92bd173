import LevChatCore

/// Lines for people (Docs/CLI.md, "Text output"): a clock, names in their colours (yours bold),
/// room events muted so chat stands out, a line naming you marked and ringing the bell.
struct TextRenderer: Renderer {
    let look: ConsoleLook

    func render(_ event: RoomEvent, viewer: Viewer) -> [Printed] {
        switch event {
        case .message(let record, let replayed):
            let own = record.id.node == viewer.me
            let mentioned = !own && viewer.name.map { ChatLook.mentions(record.text, name: $0) } == true
            var clock: ScreenText = "\(Timestamp.clock(record.time))"
            var text: ScreenText = "\(record.text)"
            if mentioned {
                clock = paint(clock, "7")
                text = paint(text, "1")
            }
            let name = ScreenText.colored("\(record.from)", palette: ChatLook.color(of: record.from), bold: own, enabled: look.colors)
            let line: ScreenText = "\(clock) \(body(record, name: name, text: text))\(record.late == true ? paint("  (late)", "2") : .empty)"
            return [Printed(line, bell: mentioned && !replayed && look.bell, confirms: own && !replayed ? record.id : nil)]
        case .pending:
            return []
        case .joined(let member, let time):
            return [roomEvent("\(Timestamp.clock(time)) * \(member.name) has entered the room")]
        case .left(let member, let reason, let time):
            let why: ScreenText = reason == "lost" ? " (connection lost)" : .empty
            return [roomEvent("\(Timestamp.clock(time)) * \(member.name) has left the room\(why)")]
        case .renamed(let from, let to, let time):
            return [roomEvent("\(Timestamp.clock(time)) * \(from.name) is now \(to.name)")]
        case .entered(let you, let roster):
            let verb: ScreenText = roster.host == you.node && roster.members.count == 1 ? "created" : "has entered"
            var lines = [roomEvent("\(Timestamp.clock(Timestamp.nowMillis())) * \(you.name) \(verb) the room")]
            if roster.members.count > 1 {
                lines.append(roomEvent("  members: \(membersText(roster, you: you.node, keyChanged: viewer.keyChanged))"))
            }
            return lines
        case .hostChanged(let previous?, let host, _, let time) where previous.node != viewer.me:
            return [roomEvent("\(Timestamp.clock(time)) * \(previous.name) left; \(host.name) is now the host")]
        case .hostChanged(_?, let host, _, let time):
            // This peer was the host and is not (its side of a split joined the other's host):
            // it did not leave.
            return [roomEvent("\(Timestamp.clock(time)) * \(host.name) is now the host")]
        case .hostChanged(nil, let host, _, let time):
            return [roomEvent("\(Timestamp.clock(time)) * \(host.name) is now the host")]
        case .notice(let text):
            return [roomEvent("* \(text)")]
        }
    }

    func keyChanged(_ member: Member, previous: String, since: String) -> Printed {
        Printed(paint("! \(member.name)'s key has changed since \(since): this may not be \(member.name)", "1;31"), bell: look.bell)
    }

    func whois(_ member: Member, _ knowledge: KeyKnowledge) -> Printed {
        let note: ScreenText
        switch (knowledge.known, knowledge.changed) {
        case (let known?, true):
            let fingerprint = NodeID(hex: known.fingerprint).map(Fingerprint.full) ?? known.fingerprint
            note = "NOT the key known for this name since \(known.since) (\(fingerprint))"
        case (let known?, false): note = "known since \(known.since)"
        case (nil, _): note = knowledge.remembering ? "first met now" : "not remembered (throwaway identity)"
        }
        return roomEvent("* \(member.name): key fingerprint \(Fingerprint.full(member.node)), \(note)")
    }

    func members(_ roster: RosterSnapshot, you: NodeID, keyChanged: Set<NodeID>) -> Printed {
        roomEvent("* \(roster.members.count) in the room: \(membersText(roster, you: you, keyChanged: keyChanged))")
    }

    func history(_ records: [ChatRecord], older: Int) -> [Printed] {
        guard !records.isEmpty else { return [roomEvent("* no messages yet")] }
        let what: ScreenText = records.count == 1 ? "the last message" : "the last \(records.count) messages"
        return [roomEvent("* \(what)\(older > 0 ? " (\(older) older kept; /history all)" : .empty):")] + records.map { record in
            return Printed("  \(Timestamp.clock(record.time)) \(body(record, name: "\(record.from)", text: "\(record.text)"))\(record.late == true ? "  (late)" : .empty)")
        }
    }

    /// A message after its clock, live and in `/history` alike: an offer by its file's name, not
    /// the offer's JSON.
    private func body(_ record: ChatRecord, name: ScreenText, text: ScreenText) -> ScreenText {
        switch record.chatKind {
        case .text: "\(name): \(text)"
        case .action: "* \(name) \(text)"
        case .offer: "* \(name) offered \(FileOffer(text: record.text).map { $0.name + ($0.isFolder ? "/" : "") } ?? "a file")"
        }
    }

    func room(code: RoomCode, name: String, port: Int) -> Printed {
        Printed("Room code: \(describing: code)   (share it; others run: levchat-peer join \(describing: code))")
    }

    func code(_ code: RoomCode) -> Printed {
        roomEvent("* room code: \(describing: code)   (others run: levchat-peer join \(describing: code))")
    }

    func end(reason: String, message: String) -> Printed? { nil }

    func help() -> [Printed] { InputLine.helpText.split(separator: "\n").map { Printed("\($0)") } }

    func error(_ message: String) -> Printed? { nil }

    func file(_ event: FileEvent) -> [Printed] {
        switch event {
        case .offered(let entry, _, let own):
            let offer = entry.offer
            let kind: ScreenText = offer.isFolder ? "folder, " : .empty
            let what: ScreenText = "\(offer.name)\(offer.isFolder ? "/" : "") (\(kind)\(ByteCount.describe(offer.size)), sha256 \(String(offer.sha256.prefix(8)))…)"
            if own, let to = entry.recipientName {
                return [roomEvent("* you offer \(to) \(what) as \(entry.id); only \(to) can /get \(entry.id)")]
            }
            if own { return [roomEvent("* you offer \(what) as \(entry.id); others type /get \(entry.id)")] }
            let whom: ScreenText = entry.toViewer ? "you " : .empty
            return [Printed("\(Timestamp.clock(entry.time)) * \(entry.from) offers \(whom)\(what) — /get \(entry.id)")]
        case .ended(let entries, let why):
            return entries.map { roomEvent("* offer \($0.id) (\($0.offer.name)) ended: \(why)") }
        case .reopened(let entries):
            return entries.map { roomEvent("* offer \($0.id) (\($0.offer.name)) is open again: \($0.from) is back; /get \($0.id)") }
        case .list(let entries):
            guard !entries.isEmpty else { return [roomEvent("* no open offers")] }
            return [roomEvent("* \(entries.count) open offer\(entries.count == 1 ? "" : "s"):")] + entries.map {
                let whom: ScreenText = $0.toViewer ? "  (to you)" : $0.recipientName.map { "  (to \($0))" } ?? .empty
                return roomEvent("  \($0.id)  \($0.offer.name)\($0.offer.isFolder ? "/" : "")  \(ByteCount.describe($0.offer.size))  from \($0.from)\(whom)")
            }
        case .started(let entry, let offset):
            if offset > 0 { return [roomEvent("* resuming \(entry.offer.name) at \(ByteCount.describe(offset))")] }
            return [roomEvent("* getting \(entry.offer.name) (\(ByteCount.describe(entry.offer.size))) from \(entry.from)")]
        case .progress(let entry, let bytes, let rate):
            let percent = entry.offer.size == 0 ? 100 : bytes * 100 / entry.offer.size
            return [roomEvent("* \(entry.offer.name): \(percent) % (\(ByteCount.describe(bytes)) of \(ByteCount.describe(entry.offer.size)), \(ByteCount.describe(Int(rate)))/s)")]
        case .sending(let entry, let to, _, let bytes, let rate):
            let percent = entry.offer.size == 0 ? 100 : bytes * 100 / entry.offer.size
            return [roomEvent("* \(entry.offer.name) to \(to): \(percent) % (\(ByteCount.describe(bytes)) of \(ByteCount.describe(entry.offer.size)), \(ByteCount.describe(Int(rate)))/s)")]
        case .sendEnded(_, _, _, _, nil):
            return []
        case .sendEnded(let entry, let to, _, let bytes, let why?):
            return [roomEvent("* sending \(entry.offer.name) to \(to) stopped at \(ByteCount.describe(bytes)) of \(ByteCount.describe(entry.offer.size)): \(why)")]
        case .received(let entry, let path):
            return [roomEvent("* received \(entry.offer.name) (\(ByteCount.describe(entry.offer.size)), sha256 verified) at \(path)")]
        case .sent(let name, _, let to?, let address):
            return [roomEvent("* sent \(name) to \(to) (\(address))")]
        case .sent(let name, _, nil, let address):
            return [roomEvent("* sent \(name) to the member at \(address)")]
        case .failed(let id, let name, let reason, let resumable):
            return [roomEvent("* \(name): \(reason)\(resumable ? "; /get \(id) resumes" : "")")]
        case .cancelled(_, let name):
            return [roomEvent("* \(name): cancelled")]
        }
    }

    /// A room event (presence, host change, notice): muted, so chat stands out.
    private func roomEvent(_ text: ScreenText) -> Printed { Printed(paint(text, "2")) }

    private func paint(_ text: ScreenText, _ sgr: StaticString) -> ScreenText {
        ScreenText.styled(text, sgr, enabled: look.colors)
    }

    private func membersText(_ roster: RosterSnapshot, you: NodeID, keyChanged: Set<NodeID>) -> ScreenText {
        ScreenText.joined(roster.members.map { member in
            var tags: [String] = []
            if member.node == roster.host { tags.append("host") }
            if member.node == you { tags.append("you") }
            if keyChanged.contains(member.node) { tags.append("KEY CHANGED") }
            let tagged: ScreenText = tags.isEmpty ? .empty : " (\(tags.joined(separator: ", ")))"
            return "\(member.name) [\(Fingerprint.short(member.node))]\(tagged)"
        }, separator: ", ")
    }
}
