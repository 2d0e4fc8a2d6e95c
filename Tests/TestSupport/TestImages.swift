import Foundation

/// Locates the test disks that `images/build.sh` makes once per run (see the Makefile's `test`
/// target). Tests that need a disk call `TestImages.path("haos-gpt.img")`.
public enum TestImages {
    /// The repository root, found from this source file's location.
    public static let repositoryRoot: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// `FWA_IMAGES` if set, else `images/out` in the repository.
    public static let directory: URL = {
        if let env = ProcessInfo.processInfo.environment["FWA_IMAGES"], !env.isEmpty {
            return URL(fileURLWithPath: env)
        }
        return repositoryRoot.appendingPathComponent("images/out")
    }()

    /// Full path of a built test image; fails loudly if `make images` has not run. Symlinks are
    /// resolved: a folder of links to the disks (`FWA_IMAGES`) would otherwise make a test's
    /// `copyItem` copy the link, and the "private copy" it then damages would be the shared disk.
    public static func path(_ name: String) throws -> String {
        let url = directory.appendingPathComponent(name).resolvingSymlinksInPath()
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw MissingImage(name: name, directory: directory.path)
        }
        return url.path
    }

    public struct MissingImage: Error, CustomStringConvertible {
        public var name: String
        public var directory: String
        public var description: String { "test image \(name) not found in \(directory): run `make images` (make test does)" }
    }

    /// Runs a command and returns its standard output; throws on a non-zero exit.
    @discardableResult
    public static func run(_ arguments: [String], stdin: Data? = nil) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let input = stdin.map { _ in Pipe() }
        if let input { process.standardInput = input }
        try process.run()
        if let input, let stdin {
            // Written on another thread: a child that fills its output pipe before reading all of
            // its input would otherwise block both.
            DispatchQueue.global().async {
                input.fileHandleForWriting.write(stdin)
                try? input.fileHandleForWriting.close()   // the child's end of input; nothing to report
            }
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CommandFailed(arguments: arguments, status: process.terminationStatus,
                                stderr: String(decoding: errData, as: UTF8.self))
        }
        return data
    }

    public struct CommandFailed: Error, CustomStringConvertible {
        public var arguments: [String]
        public var status: Int32
        public var stderr: String
        public var description: String { "\(arguments.joined(separator: " ")) exited \(status): \(stderr)" }
    }

    /// True when running as root (loop mounts possible) and the kernel knows `fstype`.
    public static func canLoopMount(_ fstype: String) -> Bool {
        guard getuid() == 0 else { return false }
        guard let text = try? String(contentsOfFile: "/proc/filesystems", encoding: .utf8) else { return false }
        return text.split(separator: "\n").contains { $0.split(separator: "\t").last.map(String.init) == fstype }
    }
}
