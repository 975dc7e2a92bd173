import LevChatCore

/// What a `RoomPeer` is at a moment, and how each of its roles ends (Docs/MIGRATION.md).
extension RoomPeer {
    enum Role: Equatable {
        case member(MemberService)
        case host(HostService)

        /// The same service, not an equal one.
        static func == (a: Role, b: Role) -> Bool {
            switch (a, b) {
            case (.member(let x), .member(let y)): x === y
            case (.host(let x), .host(let y)): x === y
            case (.member, .host), (.host, .member): false
            }
        }
    }

    /// How hosting ended.
    enum HostEnd {
        case left
        /// Another host had the higher claim; this peer now resumes there as a member.
        case yielded(MemberService, Handover)
    }

    enum MemberEnd {
        case outcome(PeerOutcome)
        case promote(MemberService, epoch: Int)
    }
}
