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

extension TestImages {
    /// Flips byte `at` of the first 4 KiB-aligned block of the image file `path` whose bytes are
    /// `block` (a file's first block, found by its content: data a test damages on purpose);
    /// returns the image offset of that block. Throws when no block holds them.
    @discardableResult
    public static func flipByte(_ at: Int, ofBlock block: [UInt8], in path: String) throws -> UInt64 {
        precondition(block.count == 4096 && at < 4096, "a whole 4 KiB block and a byte inside it")
        guard let handle = FileHandle(forUpdatingAtPath: path) else { throw CocoaError(.fileNoSuchFile) }
        defer { try? handle.close() }   // the write below is checked; closing reports nothing more
        var offset: UInt64 = 0
        while let chunk = try handle.read(upToCount: 1 << 20), !chunk.isEmpty {
            for start in stride(from: 0, to: chunk.count - 4095, by: 4096)
            where chunk[chunk.startIndex + start ..< chunk.startIndex + start + 4096].elementsEqual(block) {
                let found = offset + UInt64(start)
                try handle.seek(toOffset: found + UInt64(at))
                try handle.write(contentsOf: Data([block[at] ^ 0xFF]))
                return found
            }
            offset += UInt64(chunk.count)
        }
        throw CocoaError(.fileReadCorruptFile, userInfo: [NSFilePathErrorKey: path])
    }
}
