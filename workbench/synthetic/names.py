"""Name and place lists for the synthetic district. Common names, assembled by hand."""

FEMALE_FIRST = (
    "Abigail Aaliyah Adriana Aisha Alejandra Alicia Amara Amelia Ana Angela Ariana Ava Brianna "
    "Camila Carmen Chloe Daniela Destiny Diana Elena Emily Emma Esperanza Fatima Gabriela Grace "
    "Hana Imani Isabella Jasmine Jayla Jennifer Jessica Kayla Keisha Kimberly Layla Leah Linh Lucia "
    "Madison Maria Mariana Maya Mei Mia Naomi Natalia Nia Olivia Paola Priya Rosa Samantha Sofia "
    "Stephanie Tiana Valentina Victoria Yasmin Zoe"
).split()

MALE_FIRST = (
    "Aaron Adrian Ahmed Alejandro Andre Angel Anthony Ben Brandon Carlos Chris Daniel Darius David "
    "Diego Dominic Elijah Emmanuel Ethan Gabriel Hector Ibrahim Isaac Isaiah Jamal Javier Jayden "
    "Jesus Jonathan Jose Joshua Juan Julian Kevin Liam Luis Malik Marcus Mateo Michael Minh Mohamed "
    "Nathan Noah Omar Oscar Pedro Rafael Ricardo Samuel Santiago Tariq Thomas Tyrone Victor William "
    "Xavier Yusuf Zion"
).split()

LAST = (
    "Abdi Adams Ali Allen Alvarez Anderson Bailey Baker Banks Bell Brooks Brown Bui Campbell Carter "
    "Castillo Chavez Chen Clark Coleman Collins Cruz Davis Diaz Dinh Edwards Evans Flores Garcia "
    "Gomez Gonzalez Gray Green Guzman Hall Harris Hassan Henderson Hernandez Hill Ho Huang Hughes "
    "Jackson James Jenkins Johnson Jones Kim King Lam Le Lee Lewis Lopez Martin Martinez Mendoza "
    "Miller Mitchell Mohamed Moore Morales Morgan Morris Murphy Nguyen Ortiz Osman Parker Patel "
    "Perez Phillips Pham Powell Ramirez Reed Reyes Richardson Rivera Roberts Robinson Rodriguez "
    "Rogers Ross Ruiz Sanchez Santos Scott Smith Stewart Taylor Thomas Thompson Torres Tran Turner "
    "Vargas Vasquez Walker Ward Washington Watson White Williams Wilson Wright Yang Young"
).split()

PLACE_NAMES = (
    "Adams Banneker Bethune Brightwood Carver Cedar Chavez Clemente Douglass Eastside Edison "
    "Ellington Emerson Fairview Franklin Garfield Grant Hamilton Harbor Hawthorne Highland Hughes "
    "Jefferson Kennedy King Lakeview Lincoln Lowell Madison Mann Maplewood Marshall Monroe "
    "Northgate Oakridge Parks Pierce Riverside Roosevelt Sojourner Southside Stevenson Tubman "
    "Union Valley Washington Westfield Whitman Wilson Woodland"
).split()

PARTNER_NAMES = (
    "Northside Youth Club", "Bright Futures Tutoring", "Eastside Boys and Girls Club",
    "Reading Partners Collaborative", "City Year Corps", "Harbor Arts Academy",
    "Community Soccer League", "Girls Who Code Chapter", "Family Resource Network",
    "STEM Explorers", "Mentoring Bridges", "Neighborhood Health Alliance",
)

PROGRAM_KINDS = (
    "After-School Tutoring", "Literacy Mentors", "Summer Bridge", "Robotics Club",
    "Attendance Coaching", "Arts Enrichment", "Sports and Wellness", "College Access",
)

RESEARCH_ORGS = (
    ("State University School of Education", "Dr. Rivera", "Chronic absence and early grades"),
    ("Urban Policy Institute", "Dr. Chen", "Program participation and course passing"),
    ("Regional Education Lab", "Dr. Okafor", "Math benchmark trajectories"),
    ("Metro College", "Dr. Lindqvist", "English learner reclassification"),
    ("Center for Youth Outcomes", "Dr. Haddad", "Suspension and attendance"),
)
