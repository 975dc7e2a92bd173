#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Foundation

/// What the user does: a line, the end of input, or an interrupt (Ctrl-C / SIGTERM).
public enum UserInput: Sendable, Equatable {
    case line(String)
    case endOfInput
    case interrupt
}

/// Reads stdin lines on a dedicated thread (a terminal, a pipe or a regular file all work) and
/// turns SIGINT and SIGTERM into `.interrupt`, so every way of leaving goes through one path.
public final class StandardInput {
    public let events: AsyncStream<UserInput>
    private let continuation: AsyncStream<UserInput>.Continuation
    private let signalSources: [any DispatchSourceSignal]

    public init() {
        (events, continuation) = AsyncStream.makeStream(of: UserInput.self)
        let continuation = self.continuation
        signalSources = [SIGINT, SIGTERM].map { signo in
            signal(signo, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler { continuation.yield(.interrupt) }
            source.resume()
            return source
        }
        let thread = Thread {
            while let line = readLine(strippingNewline: true) {
                continuation.yield(.line(line))
            }
            continuation.yield(.endOfInput)
        }
        thread.start()
    }
}
