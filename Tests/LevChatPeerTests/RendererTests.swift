import Foundation
import LevChatCore
import Testing
@testable import LevChatPeer

/// The two renderers (issue 20: rendering apart from routing), over every kind of room event and
/// every answer, with hostile strings in every field a peer controls: JSON lines parse as one
/// object of the right type and give the strings back exactly; text lines carry no control
/// character but the styles' own escapes and tabs.
@Suite struct RendererTests {
    static let hostile = ["plain", "a\"quote\\back", "\u{1B}]0;owned\u{07}", "tab\there\r\nnext", "\u{202E}rtl", "名字 🙂", "\u{0}nul"]

    func events(_ text: String) -> [(RoomEvent, String?)] {
        let alice = Member(node: NodeID.random(), name: "alice", ordinal: 1, endpoints: ["10.0.0.1:1"])
        let bob = Member(node: NodeID.random(), name: "bob", ordinal: 2, endpoints: [])
        let roster = RosterSnapshot(epoch: 3, host: alice.node, members: [alice, bob])
        let record = ChatRecord(seq: 7, id: MessageID(node: bob.node, seq: 1), from: "bob", text: text, time: 1_700_000_000_000,
                                key: "", sig: "")
        return [
            (.message(record, replayed: false), "message"), (.message(record, replayed: true), "message"),
            (.joined(bob, time: 5), "presence"), (.left(bob, reason: "lost", time: 5), "presence"),
            (.entered(you: bob, roster: roster), "entered"), (.notice(text), "notice"),
            (.hostChanged(previous: alice, host: bob, epoch: 4, time: 5), "host"),
            (.hostChanged(previous: nil, host: bob, epoch: 4, time: 5), "host"),
            (.renamed(from: alice, to: bob, time: 5), "presence"),
            (.pending(MessageID(node: bob.node, seq: 2), text: text, kind: .text), nil),
        ]
    }

    @Test(arguments: hostile) func jsonLinesAreOneObjectOfTheirTypeAndKeepTheText(text: String) throws {
        for (event, type) in events(text) {
            let lines = JSONRenderer().render(event, viewer: Viewer())
            guard let type else {
                #expect(lines.isEmpty, "a pending line is for the screen only")
                continue
            }
            #expect(lines.count == 1)
            for printed in lines {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(printed.text.rendered.utf8)) as? [String: Any])
                #expect(object["type"] as? String == type)
                if case .message = event { #expect(object["text"] as? String == DisplayText.sanitize(text)) }
                if case .notice = event { #expect(object["message"] as? String == DisplayText.sanitize(text)) }
            }
        }
    }

    @Test(arguments: hostile) func textLinesCarryNoControlCharacters(text: String) {
        for look in [ConsoleLook.plain, ConsoleLook(colors: true, bell: true)] {
            for (event, type) in events(text) {
                let lines = TextRenderer(look: look).render(event, viewer: Viewer(me: nil, name: "carol"))
                #expect(lines.isEmpty == (type == nil))
                for printed in lines {
                    // Only our own SGR sequences (ESC [ … m) may be there.
                    let stripped = printed.text.rendered.replacing(/\u{1B}\[[0-9;]*m/, with: "")
                    // A tab is kept (it moves the cursor right, harmlessly); no other control character.
                    #expect(!stripped.unicodeScalars.contains { $0 != "\t" && $0.properties.generalCategory == .control },
                            "\(stripped.debugDescription)")
                }
            }
        }
    }

    /// `/history` shows each kind of message as the live line does: an offer by its name (it
    /// showed the offer's JSON), an action with its star.
    @Test func historyShowsOffersAndActionsAsTheLiveLinesDo() {
        let bob = NodeID.random()
        let file = FileOffer(file: FileOffer.randomToken(), name: "report.pdf", size: 3, sha256: String(repeating: "a", count: 64))
        let folder = FileOffer(file: FileOffer.randomToken(), name: "photos", size: 512, sha256: String(repeating: "b", count: 64), folder: true)
        let records = [(file.text, ChatKind.offer), (folder.text, .offer), ("waves", .action), ("hi", .text), ("{not an offer", .offer)]
            .enumerated().map { index, pair in
                ChatRecord(seq: index + 1, id: MessageID(node: bob, seq: index + 1), from: "bob", text: pair.0, time: 0, kind: pair.1, key: "", sig: "")
            }
        let text = TextRenderer(look: .plain)
        let shown = text.history(records, older: 0).dropFirst().map { $0.text.rendered.replacing(/^\s\s\[\d\d:\d\d:\d\d\]\s/, with: "") }
        #expect(shown == ["* bob offered report.pdf", "* bob offered photos/", "* bob waves", "bob: hi", "* bob offered a file"])
        let live = records.map { text.render(.message($0, replayed: true), viewer: Viewer()).first?.text.rendered.replacing(/^\[\d\d:\d\d:\d\d\]\s/, with: "") }
        #expect(live == shown)
    }

    /// A host change says who left, unless the previous host is this peer (its side of a split
    /// joined the other side's host): it said "bob left" to bob.
    @Test func aHostChangeNeverSaysYouLeft() {
        let bob = Member(node: NodeID.random(), name: "bob", ordinal: 2, endpoints: [])
        let carol = Member(node: NodeID.random(), name: "carol", ordinal: 3, endpoints: [])
        let text = TextRenderer(look: .plain)
        let change = RoomEvent.hostChanged(previous: bob, host: carol, epoch: 5, time: 0)
        let clock = /^\[\d\d:\d\d:\d\d\]\s/
        #expect(text.render(change, viewer: Viewer(me: carol.node)).first?.text.rendered.replacing(clock, with: "") == "* bob left; carol is now the host")
        #expect(text.render(change, viewer: Viewer(me: bob.node)).first?.text.rendered.replacing(clock, with: "") == "* carol is now the host")
    }

    /// `/help` in text: a line each (one `Printed` holding newlines showed them as `\x0A`).
    @Test func helpIsALinePerCommandInTextAndOneEventInJSON() throws {
        let lines = TextRenderer(look: .plain).help().map(\.text.rendered)
        #expect(lines == InputLine.helpText.split(separator: "\n").map(String.init))
        #expect(lines.count > 10 && !lines.contains { $0.contains("\\x") })
        let json = JSONRenderer().help()
        #expect(json.count == 1)
        let event = try #require(json.first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(event.text.rendered.utf8)) as? [String: Any])
        #expect(object["text"] as? String == InputLine.helpText)
    }

    @Test func anOwnLineConfirmsItsPendingLineAndAMentionRings() {
        let me = NodeID.random()
        let own = ChatRecord(seq: 1, id: MessageID(node: me, seq: 4), from: "carol", text: "hi", time: 0, key: "", sig: "")
        let mention = ChatRecord(seq: 2, id: MessageID(node: NodeID.random(), seq: 1), from: "bob", text: "hey carol", time: 0, key: "", sig: "")
        let text = TextRenderer(look: ConsoleLook(colors: false, bell: true))
        let viewer = Viewer(me: me, name: "carol")
        #expect(text.render(.message(own, replayed: false), viewer: viewer).first?.confirms == own.id)
        #expect(text.render(.message(mention, replayed: false), viewer: viewer).first?.bell == true)
        #expect(text.render(.message(mention, replayed: true), viewer: viewer).first?.bell == false, "history never rings")
        #expect(JSONRenderer().render(.message(own, replayed: false), viewer: viewer).first?.confirms == nil)
    }

    @Test func answersRenderInBothForms() throws {
        let member = Member(node: NodeID.random(), name: "bob", ordinal: 2, endpoints: [])
        let roster = RosterSnapshot(epoch: 1, host: member.node, members: [member])
        let code = try RoomCode(parsing: "7KQ-M4X")
        let json = JSONRenderer()
        let answers: [(Printed?, String)] = [
            (json.whois(member, KeyKnowledge(known: nil, changed: false, remembering: true)), "whois"),
            (json.members(roster, you: member.node, keyChanged: []), "members"),
            (json.history([], older: 0).first, "history"), (json.room(code: code, name: "bob", port: 1), "room"),
            (json.code(code), "code"), (json.end(reason: "left", message: "bye"), "closed"), (json.help().first, "help"),
            (json.error("oops"), "error"), (json.keyChanged(member, previous: "aa", since: "2026-01-01"), "warning"),
        ]
        for (printed, type) in answers {
            let line = try #require(printed).text.rendered
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(object["type"] as? String == type)
        }
        let text = TextRenderer(look: .plain)
        #expect(text.end(reason: "left", message: "bye") == nil && text.error("oops") == nil, "those go to stderr and the exit status")
        #expect(text.history([], older: 0).map(\.text.rendered) == ["* no messages yet"])
        #expect(text.code(code).text.rendered.contains("7KQ-M4X"))
    }
}
