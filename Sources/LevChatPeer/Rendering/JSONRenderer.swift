import LevChatCore

/// One JSON object per line (Docs/CLI.md lists every type and key). Built with `JSONText`,
/// whose escaping `ScreenTextTests` checks for every string.
struct JSONRenderer: Renderer {
    func render(_ event: RoomEvent, viewer: Viewer) -> [Printed] {
        switch event {
        case .message(let record, let replayed):
            return [emit(message(record, JSONText().string("type", "message")).bool("history", replayed).bool("late", record.late == true))]
        case .pending:
            return []
        case .joined(let member, let time):
            return [emit(JSONText().string("type", "presence").string("event", "joined").string("name", member.name)
                .string("time", Timestamp.iso8601(time)))]
        case .left(let member, let reason, let time):
            return [emit(JSONText().string("type", "presence").string("event", "left").string("name", member.name)
                .string("reason", reason).string("time", Timestamp.iso8601(time)))]
        case .renamed(let from, let to, let time):
            return [emit(JSONText().string("type", "presence").string("event", "renamed").string("name", to.name)
                .string("previous", from.name).string("time", Timestamp.iso8601(time)))]
        case .entered(let you, let roster):
            return [emit(JSONText().string("type", "entered").string("name", you.name).int("epoch", roster.epoch)
                .array("members", members(roster, you: you.node, keyChanged: viewer.keyChanged)))]
        case .hostChanged(let previous, let host, let epoch, let time):
            var object = JSONText().string("type", "host").string("host", host.name).int("epoch", epoch)
            if let previous { object = object.string("previous", previous.name) }
            return [emit(object.string("time", Timestamp.iso8601(time)))]
        case .notice(let text):
            return [emit(JSONText().string("type", "notice").string("message", DisplayText.sanitize(text)))]
        }
    }

    func keyChanged(_ member: Member, previous: String, since: String) -> Printed {
        emit(JSONText().string("type", "warning").string("kind", "key_changed").string("name", member.name)
            .string("fingerprint", member.node.hex).string("previous", previous).string("since", since))
    }

    func whois(_ member: Member, _ knowledge: KeyKnowledge) -> Printed {
        var object = JSONText().string("type", "whois").string("name", member.name).string("fingerprint", member.node.hex)
            .bool("key_changed", knowledge.changed)
        if let known = knowledge.known { object = object.string("known_since", known.since) }
        return emit(object)
    }

    func members(_ roster: RosterSnapshot, you: NodeID, keyChanged: Set<NodeID>) -> Printed {
        emit(JSONText().string("type", "members").int("epoch", roster.epoch).array("members", members(roster, you: you, keyChanged: keyChanged)))
    }

    func history(_ records: [ChatRecord], older: Int) -> [Printed] {
        [emit(JSONText().string("type", "history").array("messages", records.map { message($0).bool("late", $0.late == true) }))]
    }

    func room(code: RoomCode, name: String, port: Int) -> Printed {
        emit(JSONText().string("type", "room").string("code", code.description).string("name", name).int("port", port))
    }

    func code(_ code: RoomCode) -> Printed {
        emit(JSONText().string("type", "code").string("code", code.description))
    }

    func end(reason: String, message: String) -> Printed? {
        emit(JSONText().string("type", "closed").string("reason", reason).string("message", message))
    }

    func help() -> [Printed] { [emit(JSONText().string("type", "help").string("text", InputLine.helpText))] }

    func error(_ message: String) -> Printed? { emit(JSONText().string("type", "error").string("message", message)) }

    func file(_ event: FileEvent) -> [Printed] {
        switch event {
        case .offered(let entry, let replayed, let own):
            return [emit(offer(entry, JSONText().string("type", "offer")).bool("history", replayed).bool("you", own))]
        case .ended(let entries, let why):
            return entries.map { emit(JSONText().string("type", "offer_ended").int("id", $0.id).string("name", DisplayText.sanitize($0.offer.name))
                .string("reason", DisplayText.sanitize(why))) }
        case .reopened(let entries):
            return entries.map { emit(offer($0, JSONText().string("type", "offer_reopened"))) }
        case .list(let entries):
            return [emit(JSONText().string("type", "files").array("offers", entries.map { offer($0, JSONText().string("type", "offer")) }))]
        case .started(let entry, let offset):
            return [emit(JSONText().string("type", "transfer").int("id", entry.id).int("bytes", offset).int("size", entry.offer.size)
                .int("rate", 0).int("offset", offset))]
        case .progress(let entry, let bytes, let rate):
            return [emit(JSONText().string("type", "transfer").int("id", entry.id).int("bytes", bytes).int("size", entry.offer.size)
                .int("rate", Int(rate)))]
        case .sending(let entry, let to, _, let bytes, let rate):
            return [emit(JSONText().string("type", "transfer").int("id", entry.id).int("bytes", bytes).int("size", entry.offer.size)
                .int("rate", Int(rate)).string("to", to))]
        case .sendEnded(_, _, _, _, nil):
            return []
        case .sendEnded(let entry, let to, _, let bytes, let why?):
            return [emit(JSONText().string("type", "send_stopped").int("id", entry.id).string("name", DisplayText.sanitize(entry.offer.name))
                .string("to", to).int("bytes", bytes).string("message", DisplayText.sanitize(why)))]
        case .received(let entry, let path):
            return [emit(JSONText().string("type", "received").int("id", entry.id).string("path", DisplayText.sanitize(path))
                .string("sha256", entry.offer.sha256))]
        case .sent(let name, let id, let to, let address):
            var object = JSONText().string("type", "sent")
            if let id { object = object.int("id", id) }
            object = object.string("name", DisplayText.sanitize(name))
            if let to { object = object.string("to", to) }
            return [emit(object.string("address", address))]
        case .failed(let id, let name, let reason, let resumable):
            return [emit(JSONText().string("type", "transfer_failed").int("id", id).string("name", DisplayText.sanitize(name))
                .string("message", DisplayText.sanitize(reason)).bool("resumable", resumable))]
        case .cancelled(let id, let name):
            return [emit(JSONText().string("type", "cancelled").int("id", id).string("name", DisplayText.sanitize(name)))]
        }
    }

    private func offer(_ entry: FileBoard.Entry, _ base: JSONText) -> JSONText {
        base.int("id", entry.id).string("from", entry.from).string("name", DisplayText.sanitize(entry.offer.name))
            .int("size", entry.offer.size).string("sha256", entry.offer.sha256).bool("folder", entry.offer.isFolder)
            .string("to", entry.recipientName)  // null for an offer to the room
            .string("time", Timestamp.iso8601(entry.time))
    }

    /// A record's fields as `message` and `history` share them (`time` last but the flags).
    private func message(_ record: ChatRecord, _ base: JSONText = JSONText()) -> JSONText {
        var object = base.int("seq", record.seq).string("from", record.from).string("text", DisplayText.sanitize(record.text))
        switch record.chatKind {
        case .text: break
        case .action: object = object.string("kind", "action")
        case .offer: object = object.string("kind", "offer")
        }
        return object.string("time", Timestamp.iso8601(record.time))
    }

    private func members(_ roster: RosterSnapshot, you: NodeID, keyChanged: Set<NodeID>) -> [JSONText] {
        roster.members.map { member in
            JSONText().string("name", member.name).int("ordinal", member.ordinal)
                .bool("host", member.node == roster.host).bool("you", member.node == you)
                .string("fingerprint", member.node.hex).bool("key_changed", keyChanged.contains(member.node))
        }
    }

    private func emit(_ object: JSONText) -> Printed { Printed(ScreenText(json: object)) }
}
