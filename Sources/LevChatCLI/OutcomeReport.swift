import LevChatCore
import LevChatPeer

/// Turns how a run ended into one sentence for the user and a documented exit code.
enum OutcomeReport {
    enum Code {
        static let ok: Int32 = 0
        static let usage: Int32 = 64
        static let wrongCode: Int32 = 65
        static let roomNotFound: Int32 = 66
        static let refused: Int32 = 67
        static let incompatible: Int32 = 68
        static let network: Int32 = 69
        static let internalError: Int32 = 70
        static let avahiUnavailable: Int32 = 71
    }

    enum Context {
        case creating
        case joining(RoomCode)
    }

    static func report(_ outcome: PeerOutcome, console: Console, context: Context) -> Int32 {
        let (reason, sentence, code) = describe(outcome, context: context)
        if code == Code.ok {
            if let sentence { console.show(.notice(sentence)) }
        } else if let sentence {
            console.error(sentence)
        }
        console.showEnd(reason, message: sentence ?? "you left the room")
        return code
    }

    static func describe(_ outcome: PeerOutcome, context: Context) -> (reason: String, sentence: String?, code: Int32) {
        switch outcome {
        case .roomNotFound:
            guard case .joining(let code) = context else { return ("not_found", "no room found", Code.roomNotFound) }
            return ("not_found", "no room with code \(code) on this network (is the room still open, and are you on the same network?)", Code.roomNotFound)
        case .discoveryUnavailable(let error):
            let instead = {
                if case .creating = context { return "or create the room with --no-mdns and let others join with --peer HOST:PORT" }
                return "or join with --peer HOST:PORT"
            }()
            switch error {
            case .daemonNotRunning:
                return ("avahi_unavailable", "avahi-daemon is not running: start it (sudo systemctl start avahi-daemon), \(instead)", Code.avahiUnavailable)
            case .daemonConnectionFailed:
                return ("avahi_unavailable", "could not talk to avahi-daemon (is D-Bus running?): start both, \(instead)", Code.avahiUnavailable)
            case .other:
                return ("avahi_unavailable", "mDNS discovery failed (\(error)): \(instead)", Code.avahiUnavailable)
            case .noMulticastInterface, .multicastSocket:
                return ("avahi_unavailable", "avahi-daemon is not running, and levchat's own mDNS could not start either (\(error)): \(instead)",
                        Code.avahiUnavailable)
            }
        case .left:
            return ("left", nil, Code.ok)
        case .roomClosed:
            return ("room_closed", "the host left and the room has closed", Code.ok)
        case .hostLost(let why):
            return ("host_lost", "lost the room: \(why)", Code.network)
        case .leftWithUndelivered(let count):
            return ("undelivered", "left with \(count) message\(count == 1 ? "" : "s") the host never confirmed; they may not have been delivered", Code.network)
        case .refused(let info):
            switch ErrorCode(rawValue: info.code) {
            case .nameTaken: return ("refused", "\(info.message); choose another name with --name", Code.refused)
            case .roomFull: return ("refused", info.message.description, Code.refused)
            case .version: return ("refused", "incompatible version: \(info.message)", Code.incompatible)
            case .limited: return ("limited", "the room refuses this address for now: \(info.message)", Code.refused)
            case .auth: return ("refused", "wrong room code: check the code and try again", Code.wrongCode)
            case .replaced:
                return ("replaced", "\(info.message): another levchat-peer uses your identity (a copied state folder?); this run leaves "
                        + "the room to it; give each run its own identity (XDG_STATE_HOME), or use --ephemeral", Code.refused)
            case .protocolError?, .tooLong?, .noFile?, .busy?, .cancelled?, nil: return ("refused", "the room refused us: \(info.message)", Code.internalError)
            }
        case .connectFailed(let failure):
            switch failure {
            case .unreachable(let why): return ("unreachable", "\(why); is the room still open and the address right?", Code.network)
            case .wrongCode(let why): return ("wrong_code", "wrong room code: \(why); check the code and try again", Code.wrongCode)
            case .impostor(let why): return ("impostor", why, Code.wrongCode)
            case .incompatible(let why): return ("incompatible", "incompatible version: \(why)", Code.incompatible)
            case .limited(let why): return ("limited", "\(why); wait and try again with the right code", Code.refused)
            case .cannotListen(let why): return ("cannot_listen", why, Code.network)
            case .other(let why): return ("failed", why, Code.internalError)
            }
        case .protocolViolation(let why):
            return ("protocol", "the host broke the protocol: \(why)", Code.internalError)
        }
    }
}
