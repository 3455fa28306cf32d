// Minimal launcher for a single embedded OpenSearch 2.x node (dev/CI only).
//
// Started by scripts/opensearch.sh, which compiles this file with the JDK's javac
// against the jars fetched by scripts/opensearch/pom.xml and runs:
//
//   java <jvm opts> -Dfaultline.opensearch.home=<home> -cp <classes>:<libs>/* Launcher
//
// <home>/config/opensearch.yml and <home>/config/log4j2.properties are written by
// the script. The modules (netty4 transport, analysis-common, lang-painless) are
// not loaded from a modules/ directory like in the distribution: they are on the
// classpath and handed to the protected Node constructor as "classpath plugins",
// the way OpenSearch's own test framework does it.
//
// The JVM runs until SIGTERM/SIGINT; the shutdown hook closes the node cleanly.

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

public final class Launcher {

    /** Plugin classes of the bundled modules; a class that is not on the classpath is skipped. */
    private static final String[] DEFAULT_PLUGINS = {
        "org.opensearch.transport.Netty4Plugin",               // transport-netty4-client (required: HTTP + transport)
        "org.opensearch.analysis.common.CommonAnalysisPlugin", // analysis-common
        "org.opensearch.painless.PainlessPlugin",              // lang-painless
    };

    /** Node's constructor that takes classpath plugins is protected: expose it. */
    static final class EmbeddedNode extends Node {
        EmbeddedNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        try {
            run();
        } catch (Throwable t) {
            // e.g. node lock held, bad setting, port in use: die now, whatever threads exist
            t.printStackTrace();
            System.err.println("Launcher: node failed to start: " + t);
            Runtime.getRuntime().halt(1);
        }
    }

    private static void run() throws Exception {
        String homeProp = System.getProperty("faultline.opensearch.home");
        if (homeProp == null || homeProp.isEmpty()) {
            System.err.println("Launcher: -Dfaultline.opensearch.home=<dir> is required");
            System.exit(2);
        }
        Path home = Paths.get(homeProp).toAbsolutePath().normalize();
        Path config = home.resolve("config");
        Files.createDirectories(home.resolve("modules"));
        Files.createDirectories(home.resolve("plugins"));

        // Reads config/opensearch.yml (path.data, path.logs, ports, ...), like the real bootstrap.
        Settings initial = Settings.builder().put("path.home", home.toString()).build();
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            initial, Collections.emptyMap(), config, () -> "faultline-dev");

        // Reads config/log4j2.properties and registers OpenSearch's log4j plugins.
        LogConfigurator.registerErrorListener();
        LogConfigurator.setNodeName(Node.NODE_NAME_SETTING.get(env.settings()));
        LogConfigurator.configure(env);

        List<Class<? extends Plugin>> plugins = loadPlugins(System.getProperty("faultline.opensearch.plugins"));

        final Node node = new EmbeddedNode(env, plugins);
        final CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                if (!node.awaitClose(20, TimeUnit.SECONDS)) {
                    System.err.println("Launcher: node did not close within 20s");
                }
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                stopped.countDown();
            }
        }, "faultline-opensearch-shutdown"));

        node.start();
        System.out.println("Launcher: node started with plugins " + plugins);
        // Node threads may all be daemons: keep the JVM alive until shutdown.
        stopped.await();
    }

    @SuppressWarnings("unchecked")
    private static List<Class<? extends Plugin>> loadPlugins(String list) throws ClassNotFoundException {
        List<String> names = new ArrayList<>();
        boolean explicit = list != null && !list.trim().isEmpty();
        if (explicit) {
            for (String n : list.split(",")) {
                if (!n.trim().isEmpty()) names.add(n.trim());
            }
        } else {
            Collections.addAll(names, DEFAULT_PLUGINS);
        }
        List<Class<? extends Plugin>> out = new ArrayList<>();
        for (String name : names) {
            try {
                out.add((Class<? extends Plugin>) Class.forName(name).asSubclass(Plugin.class));
            } catch (ClassNotFoundException e) {
                if (explicit) throw e;
                System.err.println("Launcher: plugin class " + name + " not on classpath, skipped");
            }
        }
        return out;
    }
}
