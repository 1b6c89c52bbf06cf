import Foundation

/// Finds Ember's run-time files (OpenCL sources, the bundled data set) without
/// `Bundle.module`, whose generated accessor crashes when the bundle is missing.
enum ResourceBundle {
    /// Folders that may hold `file`, in search order: the folder named by `environment`
    /// (when set), the SwiftPM bundle `Ember_Ember.resources` next to the running executable
    /// or a few folders up (test bundles), then `sourceFolder` in the source tree.
    static func searchPaths(environment: String, bundleFolder: String, sourceFolder: String) -> [String] {
        var paths: [String] = []
        if let env = ProcessInfo.processInfo.environment[environment], !env.isEmpty { paths.append(env) }
        if let executable = Bundle.main.executableURL?.resolvingSymlinksInPath() {
            var folder = executable.deletingLastPathComponent()
            for _ in 0..<4 {
                let bundle = folder.appendingPathComponent("Ember_Ember.resources")
                paths.append(bundleFolder.isEmpty ? bundle.path : bundle.appendingPathComponent(bundleFolder).path)
                folder = folder.deletingLastPathComponent()
            }
        }
        let repository = URL(fileURLWithPath: #filePath)  // Sources/Ember/IO/ResourceBundle.swift
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        paths.append(repository.appendingPathComponent(sourceFolder).path)
        return paths
    }

    /// The URL of the first existing `name` in `paths`, or nil.
    static func locate(_ name: String, in paths: [String]) -> URL? {
        paths.map { URL(fileURLWithPath: $0).appendingPathComponent(name) }
            .first { FileManager.default.fileExists(atPath: $0.path) }
    }
}
