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

    func help() -> Printed { emit(JSONText().string("type", "help").string("text", InputLine.helpText)) }

    func error(_ message: String) -> Printed? { emit(JSONText().string("type", "error").string("message", message)) }

    /// A record's fields as `message` and `history` share them (`time` last but the flags).
    private func message(_ record: ChatRecord, _ base: JSONText = JSONText()) -> JSONText {
        var object = base.int("seq", record.seq).string("from", record.from).string("text", DisplayText.sanitize(record.text))
        if record.chatKind == .action { object = object.string("kind", "action") }
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
