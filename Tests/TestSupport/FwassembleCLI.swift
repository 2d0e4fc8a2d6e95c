import Foundation
import Testing

/// The built `fwassemble` binary, which SwiftPM puts beside the test bundle; tests that run it
/// are enabled only when `path` is not nil.
public enum FwassembleCLI {
    public static let path: String? = {
        let candidates = [
            URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("fwassemble").path,
            Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent("fwassemble").path,
            Bundle.main.bundleURL.appendingPathComponent("fwassemble").path,
        ]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    public struct Result: Sendable {
        public var status: Int32
        public var stdout: Data
        public var stderr: String
        /// True when a signal ended the process (`status` is then the signal's number).
        public var signalled = false
        public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// Runs the binary and waits; stderr is drained on another thread so a full pipe cannot block
    /// the child. `environment` is added to this process's environment (TMPDIR...).
    public static func run(_ arguments: [String], cwd: String? = nil, environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(path, "fwassemble binary not built"))
        process.arguments = arguments
        if let cwd { process.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let errBox = DataBox()
        let group = DispatchGroup()
        group.enter()
        DispatchQueue.global().async { errBox.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: o, stderr: String(decoding: errBox.data, as: UTF8.self),
                      signalled: process.terminationReason == .uncaughtSignal)
    }
}

final class DataBox: @unchecked Sendable { var data = Data() }
